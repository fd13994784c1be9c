/*
 * kapd_resolver.c -- the built-in `resolver` module: one libunbound
 * context per configuration generation, driven from the libev loop.
 *
 * Group `resolver { upstream = ["127.0.0.1:5353"]; resolv_conf = "...";
 * recursion = false; trust_anchor = "..."; timeout = 5; }`.  With
 * upstream, libunbound forwards to those addresses (caching); without,
 * it forwards to the nameservers of resolv_conf (/etc/resolv.conf by
 * default); with recursion = true it resolves from the root hints and
 * validates DNSSEC with trust_anchor.  The context runs on kapd's own
 * libev loop (ub_ctx_create_ub_event with an ub_event_base whose events
 * are ev_io/ev_timer watchers), so a query costs no thread hop and no
 * pipe round trip: libunbound's sockets are watched by the loop and every
 * callback runs in the loop thread.  An answer libunbound has at once
 * (its cache, a local zone) is delivered from the loop, never from inside
 * the starting call.  Each query holds a reference on its generation and
 * has its own deadline timer; a context is deleted when its generation
 * retires (fini).  The public API is kap_resolver.h.  Raw questions in
 * forward mode take a fast path of their own first (kapd_resolver_fwd.c);
 * the structures both files use are in kapd_resolver_int.h.
 */
#include "kapd.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unbound.h>
#include <unbound-event.h>

#include <kapd/kap_dnswire.h>
#include <kapd/kap_resolver.h>

#include "kapd_resolver_int.h"

/* -- configuration -------------------------------------------------------- */

static void *
resolver_conf_create(struct kap_gen *gen)
{
    struct resolver_conf *c = kap_palloc(kap_gen_pool(gen), sizeof(*c));

    if (c == NULL)
        return NULL;
    c->recursion = -1;
    c->timeout = -1.0;
    return c;
}

/*
 * Convert "127.0.0.1:5353", "[::1]:53", "127.0.0.1", "::1" or unbound's
 * own "addr@port" into unbound's "addr@port" form in pool.  NULL when the
 * address is not a numeric IPv4/IPv6 address or the port is bad.
 */
static const char *
resolver_upstream_form(struct kap_pool *pool,
                       const char *s)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port = NULL, *h = s;
    size_t hlen;
    unsigned char tmp[sizeof(struct in6_addr)];
    long p = 53;

    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (e == NULL)
            return NULL;
        h = s + 1;
        hlen = (size_t)(e - h);
        if (e[1] == ':')
            port = e + 2;
        else if (e[1] != '\0')
            return NULL;
    } else {
        const char *at = strchr(s, '@');
        const char *c1 = strchr(s, ':');
        if (at != NULL) {
            hlen = (size_t)(at - s);
            port = at + 1;
        } else if (c1 != NULL && strchr(c1 + 1, ':') == NULL) {
            hlen = (size_t)(c1 - s);     /* exactly one colon: v4:port */
            port = c1 + 1;
        } else {
            hlen = strlen(s);            /* bare v4 or bare v6 */
        }
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return NULL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, tmp) != 1
        && inet_pton(AF_INET6, host, tmp) != 1)
        return NULL;
    if (port != NULL) {
        char *end;
        errno = 0;
        p = strtol(port, &end, 10);
        if (errno != 0 || end == port || *end != '\0' || p < 1 || p > 65535)
            return NULL;
    }
    return kap_psprintf(pool, "%s@%ld", host, p);
}

static int
resolver_conf_parse(struct kap_gen *gen, void *conf,
                    const config_setting_t *group,
                    struct kap_err *err)
{
    static const char *const known[] = {
        "upstream", "resolv_conf", "recursion", "trust_anchor", "timeout",
        NULL
    };
    struct resolver_conf *c = conf;
    struct kap_pool *pool = kap_gen_pool(gen);
    const char **list = NULL;
    size_t n = 0, i;
    int rc;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, known, err) != KAP_OK)
        return KAP_ERROR;

    rc = kap_conf_get_strlist(group, "upstream", pool, &list, &n, err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    if (rc == KAP_OK) {
        const config_setting_t *s = config_setting_get_member(group,
                                                              "upstream");
        if (n > RESOLVER_MAX_UPSTREAMS) {
            kap_err_at(err, s, "resolver: at most %d upstreams",
                       RESOLVER_MAX_UPSTREAMS);
            return KAP_ERROR;
        }
        c->upstream = kap_palloc(pool, (n + 1) * sizeof(*c->upstream));
        if (c->upstream == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
        for (i = 0; i < n; i++) {
            c->upstream[i] = resolver_upstream_form(pool, list[i]);
            if (c->upstream[i] == NULL) {
                kap_err_at(err, s, "resolver: bad upstream \"%s\" (want a "
                           "numeric address, optionally with :port)",
                           list[i]);
                return KAP_ERROR;
            }
        }
        c->nupstream = n;
    }
    if (kap_conf_get_str(group, "resolv_conf", pool, &c->resolv_conf, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_bool(group, "recursion", &c->recursion, err)
        == KAP_ERROR)
        return KAP_ERROR;
    rc = kap_conf_get_str(group, "trust_anchor", pool, &c->trust_anchor,
                          err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    c->ta_explicit = (rc == KAP_OK);
    if (kap_conf_get_secs(group, "timeout", &c->timeout, err) == KAP_ERROR)
        return KAP_ERROR;
    if (c->timeout != -1.0 && (c->timeout <= 0.0 || c->timeout > 300.0)) {
        kap_err_at(err, config_setting_get_member(group, "timeout"),
                   "resolver: timeout must be in (0, 300] seconds");
        return KAP_ERROR;
    }
    if (c->recursion == 1 && c->nupstream > 0) {
        kap_err_at(err, config_setting_get_member(group, "recursion"),
                   "resolver: recursion = true and upstream are exclusive");
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
resolver_conf_check(struct kap_gen *gen, void *conf,
                    struct kap_err *err)
{
    struct resolver_conf *c = conf;

    if (c->recursion == -1)
        c->recursion = 0;
    if (c->timeout < 0.0)
        c->timeout = RESOLVER_DEF_TIMEOUT;
    if (c->resolv_conf != NULL)
        c->resolv_conf = kap_conf_path(gen, c->resolv_conf);
    else if (c->nupstream == 0 && !c->recursion)
        c->resolv_conf = RESOLVER_DEF_RESOLV;
    if (c->trust_anchor != NULL)
        c->trust_anchor = kap_conf_path(gen, c->trust_anchor);
    else if (c->recursion)
        c->trust_anchor = RESOLVER_DEF_TA;
    if ((c->recursion || c->ta_explicit)
        && access(c->trust_anchor, R_OK) != 0) {
        kap_err_set(err, "resolver: trust anchor \"%s\": %s",
                    c->trust_anchor, strerror(errno));
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* -- lifecycle ------------------------------------------------------------ */


/*
 * The ub_event_base of a context, on libev.  libunbound creates events
 * with new_event (fd -1 and bits for sockets it sets up later; bits 0 for
 * timers, armed by add_timer) and uses them with libevent's semantics:
 * add() arms the socket bits and an optional timeout; an event without
 * UB_EV_PERSIST is disarmed when it fires; a persistent one re-arms its
 * timeout.  Callbacks may free their own event: nothing touches the event
 * after its callback.  The generation is referenced around a callback,
 * since a user callback run from it may drop the last other reference
 * (whose fini deletes the context).
 */
static struct ub_event_vmt kub_event_vmt;

static void
kub_stop(struct kub_event *e)
{
    ev_io_stop(kap_loop(), &e->io);
    ev_timer_stop(kap_loop(), &e->tm);
}

static void
kub_fire(struct kub_event *e, short what)
{
    struct resolver_conf *rc = e->rc;
    struct kap_gen *gen = rc->gen;
    void (*cb)(int, short, void *) = e->cb;
    void *arg = e->arg;
    int fd = e->fd;

    if ((e->bits & UB_EV_PERSIST) && e->timeout >= 0.0) {
        ev_timer_stop(kap_loop(), &e->tm);
        ev_timer_set(&e->tm, e->timeout, 0.0);
        ev_timer_start(kap_loop(), &e->tm);
    } else if (!(e->bits & UB_EV_PERSIST)) {
        kub_stop(e);
    }
    if (cb == NULL)
        return;
    kap_gen_ref(gen);
    cb(fd, what, arg);
    kap_gen_unref(gen);
}

static void
kub_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    kub_fire(w->data, (short)(((revents & EV_READ) ? UB_EV_READ : 0)
                              | ((revents & EV_WRITE) ? UB_EV_WRITE : 0)));
}

static void
kub_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    kub_fire(w->data, UB_EV_TIMEOUT);
}

static double
kub_secs(const struct timeval *tv)
{
    double t = (double)tv->tv_sec + (double)tv->tv_usec / 1e6;

    return t > 0.0 ? t : 0.0;
}

static struct ub_event *
kub_new_event(struct ub_event_base *base, int fd,
              short bits,
              void (*cb)(int, short, void *),
              void *arg)
{
    struct kub_base *b = (struct kub_base *)base;
    struct kub_event *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return NULL;
    e->ub.magic = UB_EVENT_MAGIC;
    e->ub.vmt = &kub_event_vmt;
    e->rc = b->rc;
    e->fd = fd;
    e->bits = bits;
    e->cb = cb;
    e->arg = arg;
    e->timeout = -1.0;
    ev_init(&e->io, kub_io_cb);
    e->io.data = e;
    ev_init(&e->tm, kub_timer_cb);
    e->tm.data = e;
    return &e->ub;
}

static struct ub_event *
kub_new_signal(struct ub_event_base *base, int fd,
               void (*cb)(int, short, void *),
               void *arg)
{
    (void)base;
    (void)fd;
    (void)cb;
    (void)arg;
    return NULL;                     /* never called by libunbound */
}

static int
kub_loopexit(struct ub_event_base *base, struct timeval *tv)
{
    (void)base;
    (void)tv;
    return 0;                        /* the loop is kapd's */
}

static void
kub_add_bits(struct ub_event *ev, short bits)
{
    ((struct kub_event *)ev)->bits |= bits;
}

static void
kub_del_bits(struct ub_event *ev, short bits)
{
    ((struct kub_event *)ev)->bits &= (short)~bits;
}

static void
kub_set_fd(struct ub_event *ev, int fd)
{
    ((struct kub_event *)ev)->fd = fd;
}

static void
kub_free(struct ub_event *ev)
{
    struct kub_event *e = (struct kub_event *)ev;

    if (e == NULL)
        return;
    kub_stop(e);
    free(e);
}

static int
kub_add(struct ub_event *ev, struct timeval *tv)
{
    struct kub_event *e = (struct kub_event *)ev;
    int mask = ((e->bits & UB_EV_READ) ? EV_READ : 0)
               | ((e->bits & UB_EV_WRITE) ? EV_WRITE : 0);

    kub_stop(e);
    if (mask != 0 && e->fd >= 0) {
        ev_io_set(&e->io, e->fd, mask);
        ev_io_start(kap_loop(), &e->io);
    }
    e->timeout = tv != NULL ? kub_secs(tv) : -1.0;
    if (e->timeout >= 0.0) {
        ev_timer_set(&e->tm, e->timeout, 0.0);
        ev_timer_start(kap_loop(), &e->tm);
    }
    return 0;
}

static int
kub_del(struct ub_event *ev)
{
    struct kub_event *e = (struct kub_event *)ev;

    if (e != NULL)
        kub_stop(e);
    return 0;
}

static int
kub_add_timer(struct ub_event *ev, struct ub_event_base *base,
              void (*cb)(int, short, void *), void *arg,
              struct timeval *tv)
{
    struct kub_event *e = (struct kub_event *)ev;

    (void)base;
    if (e == NULL || tv == NULL)
        return -1;
    kub_stop(e);
    e->cb = cb;
    e->arg = arg;
    e->bits = UB_EV_TIMEOUT;
    e->timeout = kub_secs(tv);
    ev_timer_set(&e->tm, e->timeout, 0.0);
    ev_timer_start(kap_loop(), &e->tm);
    return 0;
}

static int
kub_del_timer(struct ub_event *ev)
{
    struct kub_event *e = (struct kub_event *)ev;

    if (e != NULL)
        ev_timer_stop(kap_loop(), &e->tm);
    return 0;
}

static int
kub_signal(struct ub_event *ev, struct timeval *tv)
{
    (void)ev;
    (void)tv;
    return -1;
}

static int
kub_del_signal(struct ub_event *ev)
{
    (void)ev;
    return -1;
}

static void
kub_wsa_unregister(struct ub_event *ev)
{
    (void)ev;
}

static void
kub_wouldblock(struct ub_event *ev, int bit)
{
    (void)ev;
    (void)bit;
}

static struct ub_event_vmt kub_event_vmt = {
    kub_add_bits, kub_del_bits, kub_set_fd, kub_free, kub_add, kub_del,
    kub_add_timer, kub_del_timer, kub_signal, kub_del_signal,
    kub_wsa_unregister, kub_wouldblock
};

static struct ub_event_base_vmt kub_base_vmt = {
    NULL, NULL, kub_loopexit, kub_new_event, kub_new_signal, NULL
};

static int
resolver_ub_option(struct ub_ctx *ctx, const char *opt,
                   const char *val)
{
    int r = ub_ctx_set_option(ctx, opt, val);

    if (r != 0) {
        KAP_LOG(KAP_LOG_ERR, RESOLVER_NAME, 0, "option %s %s: %s", opt, val,
                ub_strerror(r));
        return KAP_ERROR;
    }
    return KAP_OK;
}

/*
 * libunbound runs on our loop through the ub_event_base above, with no
 * thread of its own, but the library is built against libevent and binds
 * libevent's function names (event_base_*, event_add, ...), which libev's
 * libevent emulation exports too.  If libev's won the symbol lookup (kapd
 * linked without -levent before -lev), libunbound would run libev code on
 * libevent structures and corrupt the heap: refuse to start instead.
 */
/* libevent 2 only (libev has no such function): keeps -levent linked. */
extern const char **event_get_supported_methods(void);

static int
resolver_event_check(void)
{
    Dl_info info;
    void *sym;

    (void)event_get_supported_methods();
    sym = dlsym(RTLD_DEFAULT, "event_base_loop");
    if (sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL
        && strstr(info.dli_fname, "libev.") != NULL) {
        KAP_LOG(KAP_LOG_CRIT, RESOLVER_NAME, 0, "event_base_loop resolves "
                "to %s, not libevent: kapd must be linked with -levent "
                "before -lev", info.dli_fname);
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
resolver_init(struct kap_gen *gen, void *conf)
{
    struct resolver_conf *c = conf;
    struct ub_ctx *ctx;
    size_t i;
    int r;

    c->gen = gen;
    if (resolver_event_check() != KAP_OK)
        return KAP_ERROR;
    c->base.ub.magic = UB_EVENT_MAGIC;
    c->base.ub.vmt = &kub_base_vmt;
    c->base.rc = c;
    ctx = ub_ctx_create_ub_event(&c->base.ub);
    if (ctx == NULL) {
        KAP_LOG(KAP_LOG_ERR, RESOLVER_NAME, 0, "ub_ctx_create failed");
        return KAP_ERROR;
    }
    if (!c->recursion) {
        /* forwarders on loopback (tests, a local cache) are legitimate */
        if (resolver_ub_option(ctx, "do-not-query-localhost:", "no")
            != KAP_OK)
            goto fail;
    }
    /* no validator without a trust anchor: one module less per query */
    if (!c->recursion && !c->ta_explicit
        && resolver_ub_option(ctx, "module-config:", "iterator") != KAP_OK)
        goto fail;
    /* room for many queries in flight (the resolver's forward fast path,
       below, does not use libunbound); libunbound preallocates per port
       and per query slot, so 4096/2048 cost ~5 MB per generation for
       nothing */
    if (resolver_ub_option(ctx, "outgoing-range:", "1024") != KAP_OK
        || resolver_ub_option(ctx, "num-queries-per-thread:", "1024")
           != KAP_OK)
        goto fail;
    for (i = 0; i < c->nupstream; i++) {
        r = ub_ctx_set_fwd(ctx, c->upstream[i]);
        if (r != 0) {
            KAP_LOG(KAP_LOG_ERR, RESOLVER_NAME, 0, "upstream %s: %s",
                    c->upstream[i], ub_strerror(r));
            goto fail;
        }
    }
    if (c->nupstream == 0 && !c->recursion) {
        r = ub_ctx_resolvconf(ctx, c->resolv_conf);
        if (r != 0) {
            KAP_LOG(KAP_LOG_ERR, RESOLVER_NAME, 0, "resolv_conf %s: %s",
                    c->resolv_conf,
                    r == UB_READFILE ? strerror(errno) : ub_strerror(r));
            goto fail;
        }
    }
    if (c->recursion || c->ta_explicit) {
        r = ub_ctx_add_ta_file(ctx, c->trust_anchor);
        if (r != 0) {
            KAP_LOG(KAP_LOG_ERR, RESOLVER_NAME, 0, "trust_anchor %s: %s",
                    c->trust_anchor, ub_strerror(r));
            goto fail;
        }
    }
    if (!c->recursion) {
        /*
         * libunbound answers RFC 6761 "test." itself (NXDOMAIN); a
         * forwarder passes it to its upstream, which may serve it (test
         * setups do).  This finalises the context: keep it last.
         */
        r = ub_ctx_zone_add(ctx, "test.", "transparent");
        if (r != 0) {
            KAP_LOG(KAP_LOG_ERR, RESOLVER_NAME, 0, "local zone test.: %s",
                    ub_strerror(r));
            goto fail;
        }
    }
    c->ctx = ctx;
    kapd_resolver_fwd_open(c);
    return KAP_OK;

fail:
    ub_ctx_delete(ctx);
    return KAP_ERROR;
}

static void resolver_query_detach(struct kap_resolve *q);

static void
resolver_fini(struct kap_gen *gen, void *conf)
{
    struct resolver_conf *c = conf;

    (void)gen;
    /*
     * Queries hold a reference on the generation, so normally none is
     * left here.  If the core finalises anyway (forced exit), stop their
     * timers and leave them detached: their owners may still cancel them.
     */
    while (c->queries != NULL) {
        struct kap_resolve *q = c->queries;
        KAP_LOG(KAP_LOG_WARN, RESOLVER_NAME, 0,
                "generation retired with a pending query");
        resolver_query_detach(q);
    }
    kapd_resolver_fwd_close(c);
    if (c->ctx != NULL) {
        ub_ctx_delete(c->ctx);
        c->ctx = NULL;
    }
}

static void
resolver_status(struct kap_gen *gen, void *conf,
                struct kap_buf *out)
{
    struct resolver_conf *c = conf;

    (void)gen;
    kap_buf_printf(out, "%s, timeout %.1fs, %u pending, %llu queries, "
                   "%llu timeouts, fast path %s (%llu answered, %llu handed "
                   "to libunbound)",
                   c->recursion ? "recursion"
                   : c->nupstream > 0 ? "forward" : "resolv.conf",
                   c->timeout, c->pending, c->total, c->timeouts,
                   c->fwd_on ? "on" : "off", c->fwd_fast, c->fwd_handover);
}

const struct kap_module kapd_resolver_module = {
    KAP_MODULE_V1(RESOLVER_NAME),
    .version = KAP_VERSION,
    .flags = 0,
    .conf_create = resolver_conf_create,
    .conf_parse = resolver_conf_parse,
    .conf_check = resolver_conf_check,
    .init = resolver_init,
    .fini = resolver_fini,
    .status = resolver_status,
};

/* -- queries -------------------------------------------------------------- */

static void
resolver_list_remove(struct kap_resolve *q)
{
    struct resolver_conf *c = q->rc;

    if (c == NULL)
        return;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        c->queries = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    c->pending--;
}

/* Cancel libunbound work and the timer of q; q stays allocated. */
static void
resolver_query_stop(struct kap_resolve *q)
{
    int i;

    ev_timer_stop(kap_loop(), &q->timer);
    kapd_resolver_fwd_remove(q);
    for (i = 0; i < q->nsub; i++) {
        if (q->sub[i].active && q->rc != NULL && q->rc->ctx != NULL)
            (void)ub_cancel(q->rc->ctx, q->sub[i].async_id);
        q->sub[i].active = 0;
    }
}

static void
resolver_query_detach(struct kap_resolve *q)
{
    resolver_query_stop(q);
    resolver_list_remove(q);
    q->rc = NULL;
    q->gen = NULL;     /* the generation is being finalised */
}

/*
 * Release q: stop everything and free it.  Returns the generation whose
 * reference q held (or NULL): the caller drops it with kap_gen_unref()
 * after running the user's callback, so the generation outlives it.
 */
struct kap_gen *
kapd_resolver_query_release(struct kap_resolve *q)
{
    struct kap_gen *gen = q->gen;
    int i;

    resolver_query_stop(q);
    resolver_list_remove(q);
    for (i = 0; i < 2; i++)
        free(q->sub[i].d_pkt);
    free(q);
    return gen;
}

void
kapd_resolver_gen_unref(struct kap_gen *gen)
{
    if (gen != NULL)
        kap_gen_unref(gen);
}

/* Deliver the result of an address query and free it. */
static void
resolver_addrs_finish(struct kap_resolve *q, const char *why)
{
    struct sockaddr_storage all[KAP_RESOLVE_MAX_ADDRS];
    size_t n = 0, i, j, k;
    int failed = 0, rc;
    const char *err = why;
    kap_resolve_addr_fn cb = q->addr_cb;
    void *data = q->data;
    struct kap_gen *gen;

    for (i = 0; i < (size_t)q->nsub; i++) {
        struct resolve_sub *s = &q->sub[i];
        if (s->failed || !s->done) {
            failed = 1;
            if (err == NULL)
                err = s->errmsg != NULL ? s->errmsg : "timeout";
        }
        for (j = 0; j < s->naddrs && n < KAP_RESOLVE_MAX_ADDRS; j++) {
            int dup = 0;
            for (k = 0; k < n && !dup; k++)
                dup = memcmp(&all[k], &s->addrs[j], sizeof(all[k])) == 0;
            if (!dup)
                all[n++] = s->addrs[j];
        }
    }
    if (n > 0) {
        rc = KAP_OK;
        err = NULL;
    } else if (failed) {
        rc = KAP_ERROR;
    } else {
        rc = KAP_DECLINED;
        err = q->sub[0].errmsg != NULL ? q->sub[0].errmsg : "no address";
        if (q->nsub > 1 && q->sub[1].errmsg != NULL
            && strcmp(q->sub[1].errmsg, "NXDOMAIN") == 0)
            err = "NXDOMAIN";
    }
    gen = kapd_resolver_query_release(q);
    cb(data, rc, n > 0 ? all : NULL, n, err);
    kapd_resolver_gen_unref(gen);
}

static const char *
resolver_rcode_text(int rcode)
{
    switch (rcode) {
    case 0:  return "no address";
    case 1:  return "FORMERR";
    case 2:  return "SERVFAIL";
    case 3:  return "NXDOMAIN";
    case 4:  return "NOTIMP";
    case 5:  return "REFUSED";
    default: return "DNS error";
    }
}

/* The addresses of type s->rrtype (class IN) in the answer section. */
static void
resolver_pkt_addrs(const unsigned char *p, size_t len,
                   struct resolve_sub *s)
{
    struct kap_dnswire_hdr h;
    struct kap_dnswire_rr rr;
    size_t off = KAP_DNSWIRE_HDR_LEN, i;

    if (kap_dnswire_hdr_read(p, len, &h) != 0)
        return;
    for (i = 0; i < h.qdcount; i++)
        if (kap_dnswire_question_read(p, len, &off, NULL, NULL) != 0)
            return;
    for (i = 0; i < h.ancount && s->naddrs < KAP_RESOLVE_MAX_ADDRS; i++) {
        struct sockaddr_storage *ss = &s->addrs[s->naddrs];
        if (kap_dnswire_rr_read(p, len, &off, &rr) != 0)
            return;
        if (rr.rclass != KAP_DNSWIRE_C_IN || rr.type != s->rrtype)
            continue;
        memset(ss, 0, sizeof(*ss));
        if (rr.type == KAP_DNSWIRE_T_A && rr.rdlen == 4) {
            struct sockaddr_in *sin = (struct sockaddr_in *)ss;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, p + rr.rdata, 4);
            s->naddrs++;
        } else if (rr.type == KAP_DNSWIRE_T_AAAA && rr.rdlen == 16) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, p + rr.rdata, 16);
            s->naddrs++;
        }
    }
}

/*
 * The answer of sub-query s: rcode is libunbound's (non-zero: no usable
 * answer), pkt the reply packet, sec 0 insecure, 1 bogus, 2 secure.
 * Returns 1 when q was delivered and freed.
 */
static int
resolver_sub_result(struct resolve_sub *s, int rcode,
                    const unsigned char *pkt, size_t len,
                    int sec)
{
    struct kap_resolve *q = s->q;
    int i, prc;

    s->active = 0;
    s->done = 1;
    if (pkt != NULL && len < 12)
        pkt = NULL;
    if (q->type == Q_RAW) {
        kap_resolve_raw_fn cb = q->raw_cb;
        void *data = q->data;
        struct kap_gen *gen = kapd_resolver_query_release(q);
        if (rcode != 0 || pkt == NULL)
            cb(data, KAP_ERROR, NULL, 0, 2, 0, 0,
               rcode != 0 ? resolver_rcode_text(rcode) : "no answer");
        else
            cb(data, KAP_OK, pkt, len, pkt[3] & 0x0f, sec == 2, sec == 1,
               NULL);
        kapd_resolver_gen_unref(gen);
        return 1;
    }

    prc = pkt != NULL ? (pkt[3] & 0x0f) : 0;
    if (rcode != 0 || pkt == NULL) {
        s->failed = 1;
        s->errmsg = rcode != 0 ? resolver_rcode_text(rcode) : "no answer";
    } else if (sec == 1) {
        s->failed = 1;
        s->errmsg = "DNSSEC validation failed";
    } else if (prc != 0 && prc != 3) {
        s->failed = 1;
        s->errmsg = resolver_rcode_text(prc);
    } else if (prc == 3) {
        s->errmsg = "NXDOMAIN";
    } else {
        resolver_pkt_addrs(pkt, len, s);
        if (s->naddrs == 0)
            s->errmsg = "no address";
    }
    for (i = 0; i < q->nsub; i++)
        if (!q->sub[i].done)
            return 0;
    resolver_addrs_finish(q, NULL);
    return 1;
}

static void
resolver_ub_cb(void *mydata, int rcode, void *pkt, int len,
               int sec, char *why_bogus, int ratelimited)
{
    struct resolve_sub *s = mydata;
    struct kap_resolve *q = s->q;

    (void)why_bogus;
    (void)ratelimited;
    s->active = 0;
    if (q->starting) {
        /* answered inside ub_resolve_event(): deliver from the loop */
        s->deferred = 1;
        s->d_rcode = rcode;
        s->d_sec = sec;
        if (pkt != NULL && len > 0 && (s->d_pkt = malloc((size_t)len))
            != NULL) {
            memcpy(s->d_pkt, pkt, (size_t)len);
            s->d_len = (size_t)len;
        }
        return;
    }
    (void)resolver_sub_result(s, rcode, pkt, len > 0 ? (size_t)len : 0, sec);
}

/* Deliver answers kept by resolver_ub_cb; 1 when q was freed. */
static int
resolver_run_deferred(struct kap_resolve *q)
{
    int i;

    for (i = 0; i < q->nsub; i++) {
        struct resolve_sub *s = &q->sub[i];
        unsigned char *pkt = s->d_pkt;
        int freed;
        if (!s->deferred)
            continue;
        s->deferred = 0;
        s->d_pkt = NULL;
        freed = resolver_sub_result(s, s->d_rcode, pkt, s->d_len, s->d_sec);
        free(pkt);
        if (freed)
            return 1;
    }
    return 0;
}

static void
resolver_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kap_resolve *q = w->data;

    (void)loop;
    (void)revents;
    if (q->literal) {
        resolver_addrs_finish(q, NULL);
        return;
    }
    if (q->has_deferred) {
        q->has_deferred = 0;
        if (resolver_run_deferred(q))
            return;
        ev_timer_set(&q->timer, q->timeout, 0.0);   /* the rest's deadline */
        ev_timer_start(kap_loop(), &q->timer);
        return;
    }
    if (q->rc != NULL)
        q->rc->timeouts++;
    KAP_DEBUG(RESOLVER_NAME, 0, "query timed out");
    resolver_query_stop(q);
    if (q->type == Q_RAW) {
        kap_resolve_raw_fn cb = q->raw_cb;
        void *data = q->data;
        struct kap_gen *gen = kapd_resolver_query_release(q);
        cb(data, KAP_ERROR, NULL, 0, 2, 0, 0, "timeout");
        kapd_resolver_gen_unref(gen);
        return;
    }
    resolver_addrs_finish(q, NULL);
}

/*
 * Zero a new query but for its address arrays and the name buffers (8 KiB
 * of the 8.7 KiB): an address is written whole (memset) before naddrs
 * counts it, and the names are written before qwire_len says so.  A
 * calloc() of the whole struct was a tenth of kapd's instructions per
 * tunnel and per never-seen DNS query.
 */
_Static_assert(offsetof(struct kap_resolve, nsub)
                   == offsetof(struct kap_resolve, sub)
                          + sizeof(((struct kap_resolve *)0)->sub),
               "nsub follows sub[]");
_Static_assert(offsetof(struct resolve_sub, addrs)
                   + sizeof(((struct resolve_sub *)0)->addrs)
                   == sizeof(struct resolve_sub),
               "addrs ends struct resolve_sub");

static void
resolver_query_zero(struct kap_resolve *q)
{
    size_t i;

    memset(q, 0, offsetof(struct kap_resolve, sub));
    for (i = 0; i < sizeof(q->sub) / sizeof(q->sub[0]); i++)
        memset(&q->sub[i], 0, offsetof(struct resolve_sub, addrs));
    memset(&q->nsub, 0,
           offsetof(struct kap_resolve, qwire)
               - offsetof(struct kap_resolve, nsub));
    q->name[0] = '\0';
}

/* Common setup: resolver state of gen, the query, its timer. */
static struct kap_resolve *
resolver_query_new(struct kap_gen *gen,
                   const char *name, int type)
{
    struct resolver_conf *c;
    struct kap_resolve *q;
    size_t len;

    if (gen == NULL || name == NULL)
        return NULL;
    len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len > 253 * 4)   /* escaped presentation form */
        return NULL;
    c = kap_gen_module_conf(gen, RESOLVER_NAME);
    if (c == NULL || c->ctx == NULL)
        return NULL;
    q = malloc(sizeof(*q));
    if (q == NULL)
        return NULL;
    resolver_query_zero(q);
    q->rc = c;
    q->gen = gen;
    q->type = type;
    q->sub[0].q = q;
    q->sub[1].q = q;
    q->timeout = c->timeout;
    ev_timer_init(&q->timer, resolver_timer_cb, c->timeout, 0.0);
    q->timer.data = q;
    return q;
}

static void
resolver_query_link(struct kap_resolve *q)
{
    struct resolver_conf *c = q->rc;

    kap_gen_ref(q->gen);
    q->next = c->queries;
    if (c->queries != NULL)
        c->queries->prev = q;
    c->queries = q;
    c->pending++;
    c->total++;
    if (q->has_deferred)
        ev_timer_set(&q->timer, 0.0, 0.0);
    ev_timer_start(kap_loop(), &q->timer);
}

int
kapd_resolver_sub_start(struct kap_resolve *q, int i, const char *name,
                        int rrtype, int rrclass)
{
    struct resolve_sub *s = &q->sub[i];
    int r;

    s->rrtype = rrtype;
    s->active = 1;                   /* the callback may clear it at once */
    q->starting = 1;
    r = ub_resolve_event(q->rc->ctx, name, rrtype, rrclass, s,
                         resolver_ub_cb, &s->async_id);
    q->starting = 0;
    if (s->deferred)
        q->has_deferred = 1;
    if (r != 0) {
        s->active = 0;
        KAP_LOG(KAP_LOG_ERR, RESOLVER_NAME, 0, "resolve %s: %s", name,
                ub_strerror(r));
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* Parse an IPv4/IPv6 literal (optionally in brackets) into ss. */
static int
resolver_literal(const char *name, struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN + 1];
    size_t len = strlen(name);

    memset(ss, 0, sizeof(*ss));
    if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
        name++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf,
                  &((struct sockaddr_in *)ss)->sin_addr) == 1) {
        ss->ss_family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, buf,
                  &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
        ss->ss_family = AF_INET6;
        return 1;
    }
    return 0;
}

struct kap_resolve *
kap_resolve_addrs(struct kap_gen *gen, const char *name,
                  int want_v6, kap_resolve_addr_fn cb,
                  void *data)
{
    struct kap_resolve *q;

    if (cb == NULL)
        return NULL;
    q = resolver_query_new(gen, name, Q_ADDRS);
    if (q == NULL)
        return NULL;
    q->addr_cb = cb;
    q->data = data;
    if (resolver_literal(name, &q->sub[0].addrs[0])) {
        q->literal = 1;
        q->nsub = 1;
        q->sub[0].done = 1;
        q->sub[0].naddrs = 1;
        ev_timer_set(&q->timer, 0.0, 0.0);
        resolver_query_link(q);
        return q;
    }
    q->nsub = want_v6 ? 2 : 1;
    q->gen = gen;
    if (kapd_resolver_sub_start(q, 0, name, 1, 1) != KAP_OK)
        goto fail;
    if (want_v6 && kapd_resolver_sub_start(q, 1, name, 28, 1) != KAP_OK)
        goto fail;
    resolver_query_link(q);
    return q;

fail:
    if (q->sub[0].active)
        (void)ub_cancel(q->rc->ctx, q->sub[0].async_id);
    free(q->sub[0].d_pkt);
    free(q->sub[1].d_pkt);
    free(q);
    return NULL;
}

struct kap_resolve *
kap_resolve_raw(struct kap_gen *gen, const char *name,
                int rrtype, int rrclass,
                kap_resolve_raw_fn cb, void *data)
{
    struct kap_resolve *q;

    if (cb == NULL || rrtype < 0 || rrtype > 65535 || rrclass < 0
        || rrclass > 65535)
        return NULL;
    q = resolver_query_new(gen, name, Q_RAW);
    if (q == NULL)
        return NULL;
    q->raw_cb = cb;
    q->data = data;
    q->nsub = 1;
    if (kapd_resolver_fwd_start(q, name, rrtype, rrclass) == KAP_OK) {
        resolver_query_link(q);
        return q;
    }
    if (kapd_resolver_sub_start(q, 0, name, rrtype, rrclass) != KAP_OK) {
        free(q->sub[0].d_pkt);
        free(q);
        return NULL;
    }
    resolver_query_link(q);
    return q;
}

void
kap_resolve_cancel(struct kap_resolve *q)
{
    if (q == NULL)
        return;
    kapd_resolver_gen_unref(kapd_resolver_query_release(q));
}

unsigned
kap_resolve_pending(struct kap_gen *gen)
{
    struct resolver_conf *c;

    if (gen == NULL)
        return 0;
    c = kap_gen_module_conf(gen, RESOLVER_NAME);
    return c != NULL ? c->pending : 0;
}
