/*
 * kapd_conn.c -- accepted stream connections (kap_conn.h, kapd.h).
 *
 * The accept callback takes up to KAPD_ACCEPT_BATCH connections per
 * wake-up (accept4, nonblocking, close-on-exec), gives each its own pool
 * and a reference to the listener's current generation, and hands it to
 * the module's accept callback.  When the process runs out of
 * descriptors the listener pauses for a second instead of spinning.
 * Every open connection is on a process-wide list; per-module and
 * per-client counters are kept incrementally so that modules can enforce
 * limits in O(1) at every accept.
 */
#include "kapd_listen_int.h"

#include <kapd/kap_addr.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The connection as the core sees it; c must stay the first member. */
struct conn_node {
    struct kap_conn     c;
    struct conn_node   *next, *prev;   /* process list */
    struct peer_count  *peer;          /* per-(module, client) counter */
    struct mod_count   *mc;            /* per-module counter */
    int                 fd_taken;
    int                 closing;
};

/* Connections per module name (a handful of modules: a short list). */
struct mod_count {
    char              *name;           /* heap */
    unsigned           n;
    struct mod_count  *next;
};

/* Connections per (module, client IP): a small chained hash table. */
#define PEER_BUCKETS 256
struct peer_count {
    struct mod_count  *mc;
    int                family;         /* AF_INET, AF_INET6, AF_UNIX */
    unsigned char      ip[16];
    unsigned           n;
    struct peer_count *next;
};

static struct conn_node  *conns;
static unsigned           nconns;
static uint64_t           conn_ids;
static struct mod_count  *mod_counts;
static struct peer_count *peer_tab[PEER_BUCKETS];

/* The client's IP as (family, 16 bytes); v4-mapped IPv6 counts as IPv4. */
static void
peer_key(const struct sockaddr_storage *ss, int *family,
         unsigned char ip[16])
{
    memset(ip, 0, 16);
    *family = kap_addr_raw((const struct sockaddr *)ss, ip, NULL);
    if (*family == 0)
        *family = ss->ss_family;
}

static unsigned
peer_hash(const struct mod_count *mc, int family,
          const unsigned char ip[16])
{
    uint32_t h = 2166136261u ^ (uint32_t)family;
    uintptr_t m = (uintptr_t)mc;
    int i;

    for (i = 0; i < 16; i++)
        h = (h ^ ip[i]) * 16777619u;
    h ^= (uint32_t)(m >> 4);
    h *= 16777619u;
    return h % PEER_BUCKETS;
}

static struct mod_count *
mod_count_find(const char *name)
{
    struct mod_count *mc;

    for (mc = mod_counts; mc; mc = mc->next)
        if (strcmp(mc->name, name) == 0)
            return mc;
    return NULL;
}

/* Count c in; KAP_ERROR when out of memory. */
static int
counts_add(struct conn_node *node)
{
    const char *name = node->c.module->name;
    struct mod_count *mc = mod_count_find(name);
    struct peer_count *pc;
    unsigned char ip[16];
    unsigned h;
    int family;

    if (mc == NULL) {
        mc = calloc(1, sizeof(*mc));
        if (mc == NULL || (mc->name = strdup(name)) == NULL) {
            free(mc);
            return KAP_ERROR;
        }
        mc->next = mod_counts;
        mod_counts = mc;       /* kept for the process lifetime */
    }
    peer_key(&node->c.peer, &family, ip);
    h = peer_hash(mc, family, ip);
    for (pc = peer_tab[h]; pc; pc = pc->next)
        if (pc->mc == mc && pc->family == family && memcmp(pc->ip, ip, 16) == 0)
            break;
    if (pc == NULL) {
        pc = calloc(1, sizeof(*pc));
        if (pc == NULL)
            return KAP_ERROR;
        pc->mc = mc;
        pc->family = family;
        memcpy(pc->ip, ip, 16);
        pc->next = peer_tab[h];
        peer_tab[h] = pc;
    }
    pc->n++;
    mc->n++;
    node->mc = mc;
    node->peer = pc;
    return KAP_OK;
}

static void
counts_del(struct conn_node *node)
{
    struct peer_count *pc = node->peer, **pp;
    unsigned h;

    if (node->mc)
        node->mc->n--;
    if (pc == NULL)
        return;
    if (--pc->n == 0) {
        h = peer_hash(pc->mc, pc->family, pc->ip);
        for (pp = &peer_tab[h]; *pp; pp = &(*pp)->next) {
            if (*pp == pc) {
                *pp = pc->next;
                free(pc);
                break;
            }
        }
    }
    node->peer = NULL;
    node->mc = NULL;
}

unsigned
kap_conn_count(const char *module)
{
    struct mod_count *mc;

    if (module == NULL)
        return nconns;
    mc = mod_count_find(module);
    return mc ? mc->n : 0;
}

unsigned
kap_conn_count_peer(const char *module,
                    const struct sockaddr_storage *peer)
{
    struct mod_count *mc;
    struct peer_count *pc;
    unsigned char ip[16];
    int family;

    if (module == NULL || peer == NULL || (mc = mod_count_find(module)) == NULL)
        return 0;
    peer_key(peer, &family, ip);
    for (pc = peer_tab[peer_hash(mc, family, ip)]; pc; pc = pc->next)
        if (pc->mc == mc && pc->family == family && memcmp(pc->ip, ip, 16) == 0)
            return pc->n;
    return 0;
}

unsigned
kapd_conn_total(void)
{
    return nconns;
}

/* ---- closing ------------------------------------------------------------ */

static void
conn_free(struct conn_node *node)
{
    struct kap_pool *pool = node->c.pool;
    struct kap_gen *gen = node->c.gen;
    int fd = node->c.fd, taken = node->fd_taken;

    node->closing = 1;
    if (node->prev)
        node->prev->next = node->next;
    else
        conns = node->next;
    if (node->next)
        node->next->prev = node->prev;
    nconns--;
    counts_del(node);

    kap_pool_destroy(pool);         /* cleanups, then node's memory */
    kapd_mem_activity();
    if (!taken && fd >= 0)
        close(fd);
    if (gen)
        kap_gen_unref(gen);
}

void
kap_conn_close(struct kap_conn *c)
{
    struct conn_node *node = (struct conn_node *)c;

    if (c == NULL)
        return;
    if (node->closing)
        return;                     /* the core is closing it already */
    if (c->magic != KAP_CONN_MAGIC) {
        KAP_LOG(KAP_LOG_ALERT, NULL, 0,
                "kap_conn_close() of something that is not a connection");
        return;
    }
    conn_free(node);
}

int
kap_conn_take_fd(struct kap_conn *c)
{
    struct conn_node *node = (struct conn_node *)c;

    if (c == NULL || c->magic != KAP_CONN_MAGIC)
        return -1;
    node->fd_taken = 1;
    return c->fd;
}

void
kapd_conn_close_all(void)
{
    struct conn_node *node;
    const struct kap_module *m;

    while ((node = conns) != NULL) {
        node->closing = 1;
        m = node->c.module;
        if (m && m->listener && m->listener->close)
            m->listener->close(&node->c);
        conn_free(node);
    }
}

/* ---- accepting ------------------------------------------------------------- */

static void
conn_new(struct kap_listen *ls, int fd,
         const struct sockaddr_storage *ss, socklen_t sslen)
{
    struct kap_pool *pool;
    struct conn_node *node;
    struct kap_conn *c;

    pool = kap_pool_create();
    node = pool ? kap_palloc(pool, sizeof(*node)) : NULL;
    if (node == NULL) {
        KAP_LOG(KAP_LOG_ERR, ls->module, 0,
                "out of memory accepting a connection on %s", ls->addr);
        kap_pool_destroy(pool);
        close(fd);
        return;
    }
    c = &node->c;
    c->magic = KAP_CONN_MAGIC;
    c->id = ++conn_ids;
    c->fd = fd;
    c->pool = pool;
    c->gen = ls->gen;
    c->module = ls->mod;
    c->conf = ls->conf;
    c->listen = ls;
    if (sslen > sizeof(c->peer))
        sslen = sizeof(c->peer);
    memcpy(&c->peer, ss, sslen);
    c->peerlen = sslen;
    c->peer_uid = (uid_t) -1;
    c->peer_gid = (gid_t) -1;
    c->peer_pid = -1;
    if (ls->family == AF_UNIX) {
        struct ucred cr;
        socklen_t crlen = sizeof(cr);
        memcpy(c->peer_text, "unix", 5);
        c->peer.ss_family = AF_UNIX;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0
            && crlen == sizeof(cr)) {
            c->peer_cred = 1;
            c->peer_uid = cr.uid;
            c->peer_gid = cr.gid;
            c->peer_pid = cr.pid;
        }
    } else {
        /* TCP_NODELAY is inherited from the listener (kapd_listen.c) */
        kapd_sockaddr_text((const struct sockaddr *)ss, sslen, c->peer_text,
                           sizeof(c->peer_text));
    }
    c->start = kap_now();

    if (counts_add(node) != KAP_OK) {
        KAP_LOG(KAP_LOG_ERR, ls->module, 0,
                "out of memory accepting a connection on %s", ls->addr);
        kap_pool_destroy(pool);
        close(fd);
        return;
    }
    kap_gen_ref(c->gen);
    node->next = conns;
    node->prev = NULL;
    if (conns)
        conns->prev = node;
    conns = node;
    nconns++;

    KAP_DEBUG(ls->module, c->id, "accepted %s on %s", c->peer_text, ls->addr);
    ls->mod->listener->accept(c);
}

static void
accept_pause(struct ev_loop *loop, struct kap_listen *ls, int e)
{
    if (!ls->emfile_logged) {
        KAP_LOG(KAP_LOG_ERR, ls->module, 0, "accept4() on %s failed: %s; "
                "not accepting for 1 s", ls->addr, strerror(e));
        ls->emfile_logged = 1;
    }
    ev_io_stop(loop, &ls->io);
    ls->paused = 1;
    ev_timer_stop(loop, &ls->retry);
    ev_timer_set(&ls->retry, 1.0, 0.0);
    ev_timer_start(loop, &ls->retry);
}

void
kapd_conn_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct kap_listen *ls = w->data;
    struct sockaddr_storage ss;
    socklen_t sslen;
    int i, fd;

    (void)revents;
    for (i = 0; i < KAPD_ACCEPT_BATCH; i++) {
        if (ls->fd < 0 || !ls->active)
            return;
        sslen = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        fd = accept4(ls->fd, (struct sockaddr *)&ss, &sslen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
#if EAGAIN != EWOULDBLOCK
            case EWOULDBLOCK:
#endif
                return;
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                accept_pause(loop, ls, errno);
                return;
            default:
                KAP_LOG(KAP_LOG_ERR, ls->module, 0, "accept4() on %s "
                        "failed: %s", ls->addr, strerror(errno));
                return;
            }
        }
        ls->emfile_logged = 0;
        if (!kapd_clients_ok(ls->clients, (struct sockaddr *)&ss)) {
            /* reset, not a FIN: the client learns at once, no TIME_WAIT */
            struct linger lg = { 1, 0 };
            (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            close(fd);
            kapd_clients_refused(ls, (struct sockaddr *)&ss, sslen);
            continue;
        }
        conn_new(ls, fd, &ss, sslen);
        kapd_mem_activity();
    }
}

void
kapd_conn_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kap_listen *ls = w->data;

    (void)revents;
    ls->paused = 0;
    if (ls->active && ls->fd >= 0 && !kap_shutting_down())
        ev_io_start(loop, &ls->io);
}
