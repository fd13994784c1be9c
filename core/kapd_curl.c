/*
 * kapd_curl.c -- one libcurl multi handle per generation, driven by
 * kapd's libev loop (the multi_socket API).
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one
 * ev_io each) and when to call it back (CURLMOPT_TIMERFUNCTION: one
 * ev_timer).  Both callbacks only (re)arm watchers: libcurl is driven
 * from the watchers' own callbacks, never re-entrantly from inside one
 * of its callbacks, so a zero timeout is an ev_timer of 0 that fires on
 * the next loop turn.  After each curl_multi_socket_action() the finished
 * transfers are read (curl_multi_info_read) and handed to
 * kapd_curl_fetch.c.
 *
 * The multi handle is created on the first transfer of a generation and
 * cleaned up by a cleanup of the generation's pool, so it dies with the
 * generation; every transfer holds a reference on its generation, so no
 * transfer is left in it then, only idle connections.  kapd has one
 * thread: the list of multis is a plain static list.
 */
#include "kapd.h"

#include <stdlib.h>
#include <string.h>

#include "kapd_curl_int.h"

#define KC_NAME "kap_curl"

struct kc_sock;

struct kc_multi {
    struct kap_gen  *gen;        /* not referenced: dies with it */
    CURLM           *multi;
    ev_timer         timer;
    struct kc_sock  *socks;      /* watched sockets, doubly linked */
    int              closing;    /* curl_multi_cleanup is running */
    struct kc_multi *next;
};

/* one socket libcurl asked us to watch */
struct kc_sock {
    ev_io            io;
    struct kc_multi *m;
    curl_socket_t    fd;
    struct kc_sock  *prev, *next;
};

static struct kc_multi *kc_multis;
static int kc_global_ok;

static void kc_check_info(struct kc_multi *m);

/* one curl_multi_socket_action() and what it finished; the generation is
   held so that a done callback that drops the last transfer cannot free
   the multi under us */
static void
kc_action(struct kc_multi *m, curl_socket_t fd, int ev)
{
    struct kap_gen *gen = m->gen;
    int running = 0;

    kap_gen_ref(gen);
    (void)curl_multi_socket_action(m->multi, fd, ev, &running);
    kc_check_info(m);
    kap_gen_unref(gen);
}

static void
kc_check_info(struct kc_multi *m)
{
    CURLMsg *msg;
    int left;

    /* a finished transfer's done callback may add or remove others:
       libcurl allows both between calls, and info_read sees the change */
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        kapd_curl_fetch_finished(msg->easy_handle, msg->data.result);
    }
}

static void
kc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kc_multi *m = (struct kc_multi *)((char *)w
                                             - offsetof(struct kc_multi,
                                                        timer));
    (void)loop;
    (void)revents;
    kc_action(m, CURL_SOCKET_TIMEOUT, 0);
}

static void
kc_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct kc_sock *ks = (struct kc_sock *)w;
    int ev = 0;

    (void)loop;
    if (revents & EV_READ)
        ev |= CURL_CSELECT_IN;
    if (revents & EV_WRITE)
        ev |= CURL_CSELECT_OUT;
    if (revents & EV_ERROR)
        ev |= CURL_CSELECT_ERR;
    kc_action(ks->m, ks->fd, ev);
}

static void
kc_sock_free(struct kc_sock *ks)
{
    struct kc_multi *m = ks->m;

    ev_io_stop(kap_loop(), &ks->io);
    if (ks->prev)
        ks->prev->next = ks->next;
    else
        m->socks = ks->next;
    if (ks->next)
        ks->next->prev = ks->prev;
    free(ks);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what libcurl wants, or stop */
static int
kc_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
             void *socketp)
{
    struct kc_multi *m = userp;
    struct kc_sock *ks = socketp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (ks != NULL)
            kc_sock_free(ks);
        return 0;
    }
    if (ks == NULL) {
        if (m->closing || (ks = calloc(1, sizeof(*ks))) == NULL)
            return -1;      /* libcurl fails the transfer */
        ks->m = m;
        ks->fd = s;
        ks->next = m->socks;
        if (m->socks)
            m->socks->prev = ks;
        m->socks = ks;
        ev_init(&ks->io, kc_io_cb);
        curl_multi_assign(m->multi, s, ks);
    }
    if (what & CURL_POLL_IN)
        events |= EV_READ;
    if (what & CURL_POLL_OUT)
        events |= EV_WRITE;
    ev_io_stop(kap_loop(), &ks->io);
    ev_io_set(&ks->io, s, events);
    if (events)
        ev_io_start(kap_loop(), &ks->io);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: (re)arm the one timer; -1 stops it */
static int
kc_timer_set_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct kc_multi *m = userp;

    (void)multi;
    ev_timer_stop(kap_loop(), &m->timer);
    if (timeout_ms >= 0 && !m->closing) {
        ev_timer_set(&m->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(kap_loop(), &m->timer);
    }
    return 0;
}

/* gen pool cleanup: the generation is retiring */
static void
kc_multi_free(void *data)
{
    struct kc_multi *m = data, **pp;

    for (pp = &kc_multis; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    m->closing = 1;
    if (m->multi != NULL)
        curl_multi_cleanup(m->multi);   /* closes idle connections */
    ev_timer_stop(kap_loop(), &m->timer);
    while (m->socks != NULL)
        kc_sock_free(m->socks);
    free(m);
}

static struct kc_multi *
kc_multi_get(struct kap_gen *gen)
{
    struct kc_multi *m;

    for (m = kc_multis; m != NULL; m = m->next)
        if (m->gen == gen)
            return m;
    if (!kc_global_ok) {
        /* kapd has one thread and OpenSSL is already set up by the core */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            KAP_LOG(KAP_LOG_ERR, KC_NAME, 0, "curl_global_init failed");
            return NULL;
        }
        kc_global_ok = 1;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return NULL;
    m->gen = gen;
    ev_timer_init(&m->timer, kc_timer_cb, 0., 0.);
    if ((m->multi = curl_multi_init()) == NULL
        || kap_pool_cleanup_add(kap_gen_pool(gen), kc_multi_free, m)
           != KAP_OK) {
        if (m->multi != NULL)
            curl_multi_cleanup(m->multi);
        free(m);
        return NULL;
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, kc_socket_cb);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, kc_timer_set_cb);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    m->next = kc_multis;
    kc_multis = m;
    return m;
}

int
kapd_curl_multi_add(struct kap_gen *gen, CURL *easy)
{
    struct kc_multi *m = kc_multi_get(gen);

    if (m == NULL)
        return KAP_ERROR;
    /* libcurl answers with a zero timeout (kc_timer_set_cb): the
       transfer starts from the loop */
    return curl_multi_add_handle(m->multi, easy) == CURLM_OK ? KAP_OK
                                                             : KAP_ERROR;
}

void
kapd_curl_multi_remove(struct kap_gen *gen, CURL *easy)
{
    struct kc_multi *m;

    for (m = kc_multis; m != NULL; m = m->next) {
        if (m->gen == gen) {
            (void)curl_multi_remove_handle(m->multi, easy);
            return;
        }
    }
}

