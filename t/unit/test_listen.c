/*
 * test_listen.c -- listen address parsing, kap_listen_add, and listeners
 * and connections on a real libev loop: TCP accept, UDP datagrams, unix
 * sockets, hand-over across generations (same socket, new generation),
 * a failed activation leaving the running set alone, connections that
 * outlive a reload, kapd_conn_close_all, per-peer counts.
 * Generations are built by hand (no config files); only 127.0.0.1 is used.
 */
#include "kapd.h"
#include "kapd_listen_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tap.h"

/* ---- parsing --------------------------------------------------------- */

static void
test_parse(void)
{
    static const struct { const char *a; int fam; int port; const char *ip; }
    good[] = {
        { "127.0.0.1:3128", AF_INET, 3128, "127.0.0.1" },
        { "0.0.0.0:53", AF_INET, 53, "0.0.0.0" },
        { "localhost:8080", AF_INET, 8080, "127.0.0.1" },
        { "[::1]:53", AF_INET6, 53, "::1" },
        { "[::]:19420", AF_INET6, 19420, "::" },
        { "*:3128", AF_INET6, 3128, "::" },
        { ":3129", AF_INET6, 3129, "::" },
        { "127.0.0.1:65535", AF_INET, 65535, "127.0.0.1" },
        { "unix:/run/kap/dns.sock", AF_UNIX, 0, NULL },
        { "unix:rel.sock", AF_UNIX, 0, NULL },
    };
    static const char *const bad[] = {
        "", "3128", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
        "127.0.0.1:65536", "127.0.0.1:http", "127.0.0.1:-1",
        "127.0.0.1:+80", "127.0.0.1:80 ", " 127.0.0.1:80", "example.com:80",
        "256.1.1.1:80", "::1:53", "[::1]53", "[::1]", "[zz]:53", "[]:53",
        "[127.0.0.1]:53", "unix:", "**:80", "*.*:80", "127.0.0.1:0080000",
        NULL
    };
    struct sockaddr_storage ss;
    socklen_t len;
    struct kap_err e;
    char ip[INET6_ADDRSTRLEN], longpath[200];
    size_t i;
    int port;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(&e, 0, sizeof(e));
        if (!ok(kapd_listen_parse(good[i].a, KAP_LISTEN_TCP, &ss, &len, &e)
                == KAP_OK && ss.ss_family == good[i].fam,
                "parse \"%s\"", good[i].a)) {
            diag("%s", e.msg);
            continue;
        }
        if (good[i].fam == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
            port = ntohs(s4->sin_port);
            ok(len == sizeof(*s4) && port == good[i].port
               && strcmp(ip, good[i].ip) == 0, "  %s port %d", ip, port);
        } else if (good[i].fam == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
            port = ntohs(s6->sin6_port);
            ok(len == sizeof(*s6) && port == good[i].port
               && strcmp(ip, good[i].ip) == 0, "  [%s] port %d", ip, port);
        } else {
            struct sockaddr_un *su = (struct sockaddr_un *)&ss;
            is_str(su->sun_path, good[i].a + 5, "  unix path");
        }
    }
    for (i = 0; bad[i]; i++) {
        memset(&e, 0, sizeof(e));
        ok(kapd_listen_parse(bad[i], KAP_LISTEN_TCP, &ss, &len, &e)
           == KAP_ERROR && e.set && e.msg[0], "reject \"%s\": %s", bad[i],
           e.msg);
    }
    memcpy(longpath, "unix:/", 6);
    memset(longpath + 6, 'x', sizeof(longpath) - 7);
    longpath[sizeof(longpath) - 1] = '\0';
    memset(&e, 0, sizeof(e));
    ok(kapd_listen_parse(longpath, KAP_LISTEN_UDP, &ss, &len, &e) == KAP_ERROR
       && strstr(e.msg, "longer"), "reject an over-long unix path");
    memset(&e, 0, sizeof(e));
    kapd_listen_parse("127.0.0.1:99999", KAP_LISTEN_TCP, &ss, &len, &e);
    ok(strstr(e.msg, "between 1 and 65535") != NULL, "port range message");
}

/* ---- a test module --------------------------------------------------- */

struct tconf { int tag; };

static int naccepted, ndgrams, nclosed_cb, keep_open;
static struct kap_conn *last_conn;
static struct kap_gen *last_gen;
static void *last_conf;
static char last_peer[64];
static unsigned last_count, last_count_peer;

static void
t_accept(struct kap_conn *c)
{
    naccepted++;
    last_conn = c;
    last_gen = c->gen;
    last_conf = c->conf;
    memcpy(last_peer, c->peer_text, sizeof(last_peer));
    last_count = kap_conn_count("tmod");
    last_count_peer = kap_conn_count_peer("tmod", &c->peer);
    if (write(c->fd, "hi\n", 3) != 3) {
        /* the client will notice */
    }
    if (!keep_open)
        kap_conn_close(c);
}

static void
t_dgram(struct kap_listen *ls, void *conf, struct kap_dgram *d)
{
    char reply[128];
    int n;

    ndgrams++;
    last_conf = conf;
    memcpy(last_peer, d->peer_text, strlen(d->peer_text) + 1);
    n = snprintf(reply, sizeof(reply), "echo %d %.*s", kap_listen_port(ls),
                 (int)d->len, (const char *)d->data);
    kap_dgram_send(ls, (struct sockaddr *)&d->peer, d->peerlen, reply,
                   (size_t)n);
}

static void
t_close(struct kap_conn *c)
{
    nclosed_cb++;
}

static const struct kap_listener_ops t_ops = { t_accept, t_dgram, t_close };
static const struct kap_module t_mod = {
    KAP_MODULE_V1("tmod"),
    .listener = &t_ops,
};

static struct tconf confs[4];
static struct kapd_gen_module gms[4];
static struct kap_gen gens[4];
static char prefix[64];

static struct kap_gen *
gen_make(int i)
{
    struct kap_gen *g = &gens[i];

    memset(g, 0, sizeof(*g));
    g->magic = KAPD_GEN_MAGIC;
    g->id = (uint64_t)i + 1;
    g->refs = 1000;             /* the test owns them; never retired */
    g->pool = kap_pool_create();
    g->prefix = prefix;
    confs[i].tag = i + 1;
    gms[i].mod = &t_mod;
    gms[i].conf = &confs[i];
    g->mods = &gms[i];
    g->nmods = 1;
    return g;
}

/* ---- helpers --------------------------------------------------------- */

static void
deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    *(int *)w->data = 1;
}

/* Run the loop until *counter reaches want or 5 s pass. */
static int
run_until(int *counter, int want)
{
    struct ev_loop *loop = kap_loop();
    ev_timer t;
    int expired = 0;

    ev_timer_init(&t, deadline_cb, 5.0, 0.0);
    t.data = &expired;
    ev_now_update(loop);
    ev_timer_start(loop, &t);
    while (*counter < want && !expired)
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &t);
    return *counter >= want;
}

/* A free port on 127.0.0.1 for the given socket type. */
static int
free_port(int type)
{
    struct sockaddr_in a;
    socklen_t l = sizeof(a);
    int fd = socket(AF_INET, type, 0), port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0
        || getsockname(fd, (struct sockaddr *)&a, &l) < 0)
        return -1;
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void
set_timeout(int fd)
{
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int
tcp_connect(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    set_timeout(fd);
    return fd;
}

static int
unix_connect(const char *path)
{
    struct sockaddr_un a;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(a.sun_path)) {
        close(fd);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    set_timeout(fd);
    return fd;
}

/* Read the greeting "hi\n" (after the loop accepted). */
static int
read_hi(int fd)
{
    char buf[8];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    return n == 3 && memcmp(buf, "hi\n", 3) == 0;
}

/* Connect, let the loop accept, read the greeting; returns the fd. */
static int
tcp_roundtrip(int port)
{
    int fd = tcp_connect(port), want = naccepted + 1;

    if (fd < 0 || !run_until(&naccepted, want) || !read_hi(fd)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int
udp_roundtrip(int port, char *reply, size_t size)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), want;
    ssize_t n;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    set_timeout(fd);
    want = ndgrams + 1;
    if (sendto(fd, "ping", 4, 0, (struct sockaddr *)&a, sizeof(a)) != 4
        || !run_until(&ndgrams, want)) {
        close(fd);
        return -1;
    }
    n = recv(fd, reply, size - 1, 0);
    close(fd);
    if (n < 0)
        return -1;
    reply[n] = '\0';
    return 0;
}

/*
 * Out of descriptors: accept4 fails with EMFILE.  The listener must pause
 * (a handful of loop iterations, not a spin) and accept again once
 * descriptors are available (it retries after 1 s).
 */
static void
test_emfile(int port)
{
    struct rlimit old, low;
    struct ev_loop *loop = kap_loop();
    unsigned before;
    int fd, probe, n0 = naccepted, flag = 0;
    ev_timer t;

    fd = tcp_connect(port);
    probe = dup(0);
    if (fd < 0 || probe < 0 || getrlimit(RLIMIT_NOFILE, &old) < 0) {
        ok(0, "EMFILE test set-up");
        return;
    }
    close(probe);
    low = old;
    low.rlim_cur = (rlim_t)probe;           /* no descriptor left */
    ok(setrlimit(RLIMIT_NOFILE, &low) == 0, "descriptor limit lowered");
    before = ev_iteration(loop);
    ev_timer_init(&t, deadline_cb, 0.3, 0.0);
    t.data = &flag;
    ev_timer_start(loop, &t);
    while (!flag)
        ev_run(loop, EVRUN_ONCE);
    ok(naccepted == n0, "nothing accepted without descriptors");
    ok(ev_iteration(loop) - before < 20, "the loop does not spin on EMFILE "
       "(%u iterations in 0.3 s)", ev_iteration(loop) - before);
    setrlimit(RLIMIT_NOFILE, &old);
    ok(run_until(&naccepted, n0 + 1) && read_hi(fd),
       "accepting resumes once descriptors are back");
    close(fd);
}

/* ---- runtime ---------------------------------------------------------- */

static void
test_runtime(void)
{
    struct kap_gen *g1, *g2, *g3;
    struct kap_err e;
    struct kap_listen *tcp1, *tcp2;
    config_t cfg;
    char path[128], reply[128], want[128];
    struct stat st;
    int p1, p2, pu, pw, fd, fd2, kept, blocker;
    struct sockaddr_in a;

    snprintf(prefix, sizeof(prefix), "/tmp/kapd-test-listen-XXXXXX");
    if (!ok(mkdtemp(prefix) != NULL, "temp prefix"))
        return;
    p1 = free_port(SOCK_STREAM);
    p2 = free_port(SOCK_STREAM);
    pu = free_port(SOCK_DGRAM);
    pw = free_port(SOCK_STREAM);
    ok(p1 > 0 && p2 > 0 && pu > 0 && pw > 0 && p1 != p2 && pw != p1
       && pw != p2, "free ports %d %d %d %d", p1, p2, pu, pw);
    kap_loop();

    /* generation 1: tcp p1, udp pu, unix tcp rel.sock */
    g1 = gen_make(0);
    g1->core.unix_mode = 0600;
    memset(&e, 0, sizeof(e));
    snprintf(path, sizeof(path), "127.0.0.1:%d", p1);
    ok(kap_listen_add(g1, "tmod", KAP_LISTEN_TCP, path, NULL, &e) == KAP_OK,
       "add tcp %s", path);
    snprintf(path, sizeof(path), "127.0.0.1:%d", pu);
    ok(kap_listen_add(g1, "tmod", KAP_LISTEN_UDP, path, NULL, &e) == KAP_OK,
       "add udp %s", path);
    ok(kap_listen_add(g1, "tmod", KAP_LISTEN_TCP, "unix:rel.sock", NULL, &e)
       == KAP_OK, "add unix:rel.sock");

    /* duplicates, with file:line */
    config_init(&cfg);
    snprintf(path, sizeof(path), "x = 1;\nlisten = \"localhost:%d\";\n", p1);
    config_read_string(&cfg, path);
    snprintf(path, sizeof(path), "localhost:%d", p1);
    ok(kap_listen_add(g1, "tmod", KAP_LISTEN_TCP, path,
                      config_lookup(&cfg, "listen"), &e) == KAP_ERROR
       && strstr(e.msg, "duplicate") && e.line == 2,
       "duplicate address (localhost = 127.0.0.1) at line 2: %s", e.msg);
    memset(&e, 0, sizeof(e));
    ok(kap_listen_add(g1, "tmod", KAP_LISTEN_UDP, "unix:rel.sock", NULL, &e)
       == KAP_ERROR, "same unix path for udp is a duplicate too");
    memset(&e, 0, sizeof(e));
    ok(kap_listen_add(g1, "tmod", KAP_LISTEN_TCP, "nowhere:1",
                      config_lookup(&cfg, "x"), &e) == KAP_ERROR
       && e.line == 1 && strstr(e.msg, "nowhere"), "bad address at line 1");
    config_destroy(&cfg);

    memset(&e, 0, sizeof(e));
    umask(027);
    if (!ok(kapd_listen_activate(g1, NULL, &e) == KAP_OK, "activate gen 1"))
        diag("%s", e.msg);
    is_int(g1->nlistens, 3, "gen 1 has 3 listeners");
    {
        char sock[300];
        mode_t um = umask(022);
        umask(um);
        snprintf(sock, sizeof(sock), "%s/rel.sock", prefix);
        if (lstat(sock, &st) != 0)
            memset(&st, 0, sizeof(st));
        ok(S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
           "unix socket made with kapd.unix_mode 0600 (%o)",
           (unsigned)(st.st_mode & 0777));
        is_int((int)um, 027, "the umask is kapd's again after bind()");
    }
    tcp1 = g1->nlistens ? g1->listens[0] : NULL;
    is_int(kap_listen_port(tcp1), p1, "kap_listen_port");
    snprintf(path, sizeof(path), "127.0.0.1:%d", p1);
    is_str(kap_listen_addr(tcp1), path, "kap_listen_addr");

    /* TCP accept */
    fd = tcp_roundtrip(p1);
    ok(fd >= 0, "tcp connection accepted and served");
    ok(last_gen == g1 && last_conf == &confs[0], "conn has gen 1 and its conf");
    ok(strncmp(last_peer, "127.0.0.1:", 10) == 0, "peer text %s", last_peer);
    is_int(last_count, 1, "kap_conn_count during accept");
    is_int(last_count_peer, 1, "kap_conn_count_peer during accept");
    is_int(kapd_conn_total(), 0, "closed by the module");
    if (fd >= 0)
        close(fd);

    /* UDP */
    ok(udp_roundtrip(pu, reply, sizeof(reply)) == 0, "udp datagram answered");
    snprintf(want, sizeof(want), "echo %d ping", pu);
    is_str(reply, want, "udp reply via kap_dgram_send");
    ok(last_conf == &confs[0], "datagram gets gen 1's conf");

    /* unix */
    snprintf(path, sizeof(path), "%s/rel.sock", prefix);
    ok(stat(path, &st) == 0 && S_ISSOCK(st.st_mode)
       && (st.st_mode & 0777) == 0600, "unix socket under the prefix, 0600");
    fd = unix_connect(path);
    ok(fd >= 0 && run_until(&naccepted, naccepted + 1) && read_hi(fd),
       "unix connection accepted");
    is_str(last_peer, "unix", "unix peer text");
    if (fd >= 0)
        close(fd);

    /* a connection that stays open across the reload */
    keep_open = 1;
    kept = tcp_roundtrip(p1);
    ok(kept >= 0 && kapd_conn_total() == 1, "one connection kept open");
    fd2 = tcp_roundtrip(p1);
    is_int(kap_conn_count("tmod"), 2, "two open connections");
    {
        struct sockaddr_storage lo;
        struct sockaddr_in6 *m6 = (struct sockaddr_in6 *)&lo;
        memset(&lo, 0, sizeof(lo));
        m6->sin6_family = AF_INET6;
        m6->sin6_addr.s6_addr[10] = m6->sin6_addr.s6_addr[11] = 0xff;
        m6->sin6_addr.s6_addr[12] = 127;
        m6->sin6_addr.s6_addr[15] = 1;
        is_int(kap_conn_count_peer("tmod", &lo), 2,
               "count_peer: v4-mapped 127.0.0.1 is the same client");
        is_int(kap_conn_count_peer("other", &lo), 0, "other module: 0");
    }
    kap_conn_close(last_conn);
    if (fd2 >= 0)
        close(fd2);
    keep_open = 0;
    is_int(kapd_conn_total(), 1, "back to one");

    /* generation 2: keeps tcp p1, drops udp and unix, adds tcp p2 */
    g2 = gen_make(1);
    snprintf(path, sizeof(path), "127.0.0.1:%d", p2);
    kap_listen_add(g2, "tmod", KAP_LISTEN_TCP, path, NULL, &e);
    snprintf(path, sizeof(path), "localhost:%d", p1);   /* same address */
    kap_listen_add(g2, "tmod", KAP_LISTEN_TCP, path, NULL, &e);
    snprintf(path, sizeof(path), "*:%d", pw);           /* dual stack */
    kap_listen_add(g2, "tmod", KAP_LISTEN_TCP, path, NULL, &e);
    memset(&e, 0, sizeof(e));
    if (!ok(kapd_listen_activate(g2, g1, &e) == KAP_OK, "activate gen 2"))
        diag("%s", e.msg);
    tcp2 = g2->nlistens == 3 ? g2->listens[1] : NULL;
    ok(tcp2 == tcp1, "the p1 listener was handed over, not rebound");
    fd = tcp_roundtrip(p1);
    ok(fd >= 0 && last_gen == g2 && last_conf == &confs[1],
       "new connection on the kept listener gets gen 2");
    if (fd >= 0)
        close(fd);
    fd = tcp_roundtrip(p2);
    ok(fd >= 0 && last_gen == g2, "the new listener works");
    if (fd >= 0)
        close(fd);
    fd = tcp_roundtrip(pw);
    ok(fd >= 0 && strncmp(last_peer, "127.0.0.1:", 10) == 0,
       "wildcard listener reached over IPv4, peer %s", last_peer);
    if (fd >= 0)
        close(fd);
    test_emfile(p1);
    snprintf(path, sizeof(path), "%s/rel.sock", prefix);
    ok(stat(path, &st) < 0 && errno == ENOENT, "dropped unix socket removed");
    {
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)pu);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok(bind(u, (struct sockaddr *)&a, sizeof(a)) == 0,
           "dropped udp port was closed");
        close(u);
    }
    is_int(kapd_conn_total(), 1, "the old connection survived the reload");

    /* generation 3 fails: its new port is taken; gen 2 keeps serving */
    blocker = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)pu);   /* free for TCP? take it */
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok(blocker >= 0 && bind(blocker, (struct sockaddr *)&a, sizeof(a)) == 0
       && listen(blocker, 1) == 0, "an outsider holds tcp port %d", pu);
    g3 = gen_make(2);
    snprintf(path, sizeof(path), "127.0.0.1:%d", p1);
    kap_listen_add(g3, "tmod", KAP_LISTEN_TCP, path, NULL, &e);
    config_init(&cfg);
    config_read_string(&cfg, "\n\n\nlisten = \"x\";\n");
    snprintf(path, sizeof(path), "127.0.0.1:%d", pu);
    kap_listen_add(g3, "tmod", KAP_LISTEN_TCP, path,
                   config_lookup(&cfg, "listen"), &e);
    config_destroy(&cfg);
    memset(&e, 0, sizeof(e));
    ok(kapd_listen_activate(g3, g2, &e) == KAP_ERROR
       && strstr(e.msg, "bind()") && e.line == 4,
       "activation fails with the bind error at line 4: %s", e.msg);
    fd = tcp_roundtrip(p1);
    ok(fd >= 0 && last_gen == g2, "gen 2 still serves p1");
    if (fd >= 0)
        close(fd);
    fd = tcp_roundtrip(p2);
    ok(fd >= 0 && last_gen == g2, "gen 2 still serves p2");
    if (fd >= 0)
        close(fd);
    close(blocker);

    /* a module that is not loaded */
    g3 = gen_make(3);
    kap_listen_add(g3, "ghost", KAP_LISTEN_TCP, "127.0.0.1:1", NULL, &e);
    memset(&e, 0, sizeof(e));
    ok(kapd_listen_activate(g3, g2, &e) == KAP_ERROR
       && strstr(e.msg, "not loaded"), "listener of an unloaded module");

    /* shutdown */
    kapd_listen_stop_all();
    fd = tcp_connect(p1);
    {
        int n0 = naccepted, flag = 0;
        struct ev_loop *loop = kap_loop();
        ev_timer t;
        ev_timer_init(&t, deadline_cb, 0.2, 0.0);
        t.data = &flag;
        ev_timer_start(loop, &t);
        while (!flag)
            ev_run(loop, EVRUN_ONCE);
        ok(naccepted == n0, "stopped listeners do not accept");
    }
    if (fd >= 0)
        close(fd);
    kapd_conn_close_all();
    is_int(nclosed_cb, 1, "close_all called the listener close callback");
    is_int(kapd_conn_total(), 0, "no connections left");
    ok(kept >= 0 && recv(kept, reply, sizeof(reply), 0) == 0,
       "the kept client sees EOF");
    if (kept >= 0)
        close(kept);
    kapd_listen_close_all();
    ok(tcp_connect(p1) < 0, "listeners closed");
    rmdir(prefix);
    kap_pool_destroy(gens[0].pool);
    kap_pool_destroy(gens[1].pool);
    kap_pool_destroy(gens[2].pool);
    kap_pool_destroy(gens[3].pool);
}

/* kapd_unix_peer_ok: who a unix datagram listener in /run/k/ab answers */
static int
peer(const char *dir, const char *path, int abstract)
{
    struct sockaddr_un sun;
    size_t n = strlen(path);
    socklen_t len;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (n + 2 > sizeof(sun.sun_path))
        return -1;
    memcpy(sun.sun_path + (abstract ? 1 : 0), path, n);
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n
                      + (abstract ? 1 : 1));
    return kapd_unix_peer_ok(dir, (struct sockaddr *)&sun, len);
}

static void
test_unix_peers(void)
{
    struct sockaddr_un unnamed = { .sun_family = AF_UNIX };

    is_int(peer("/run/k/ab", "/run/k/ab/.b1.2", 0), 1, "a socket in the directory");
    is_int(peer("/run/k/ab/", "/run/k/ab/sub/c", 0), 1, "one in a subdirectory");
    is_int(peer("/run/k/ab", "/run/k/ab/.b1.2", 1), 1, "an abstract name under it");
    is_int(peer("/run/k/ab", "/run/k/abc/x", 0), 0, "not a sibling sharing a prefix");
    is_int(peer("/run/k/ab", "/run/k/ab", 0), 0, "not the directory itself");
    is_int(peer("/run/k/ab", "/run/k/ab/", 0), 0, "not the directory with a slash");
    is_int(peer("/run/k/ab", "/run/k/ab/../../user/1000/bus", 0), 0, "no .. component");
    is_int(peer("/run/k/ab", "/run/k/ab/./x", 0), 0, "no . component");
    is_int(peer("/run/k/ab", "/run/k/ab//x", 0), 0, "no empty component");
    is_int(peer("/run/k/ab", "/run/k/ab/x/", 0), 0, "no trailing slash");
    is_int(peer("/run/k/ab", "/dev/log", 0), 0, "not /dev/log");
    is_int(peer("/run/k/ab", "/run/systemd/journal/socket", 1), 0,
           "not an abstract name elsewhere");
    is_int(kapd_unix_peer_ok("/run/k/ab", (struct sockaddr *)&unnamed,
                             sizeof(sa_family_t)), 0, "not an unnamed socket");
}

int
main(void)
{
    test_unix_peers();
    test_parse();
    test_runtime();
    return done_testing();
}
