/*
 * kap_shim_netcheck.c -- `kap-shim netcheck [--timeout S] PROBE...`
 *
 *   --open    tcp:HOST:PORT          a TCP connection is established
 *   --blocked tcp:HOST:PORT          it is not (refused, unreachable, or
 *                                    no answer within the timeout)
 *   --open    dns:HOST:PORT/NAME     the resolver answers an A query for
 *                                    NAME (any rcode)
 *   --blocked dns:HOST:PORT/NAME     no answer
 *   --open    connect:HOST:PORT/TARGET:TPORT
 *                                    the proxy at HOST:PORT answers 200
 *                                    to CONNECT TARGET:TPORT
 *   --blocked connect:...            anything else (403, no proxy)
 *
 * HOST is a numeric IPv4 or [IPv6] address (no resolver is used: the
 * probes must not depend on the DNS they may be testing).  One line per
 * probe on stdout, "PASS" or "FAIL", the probe, and what was seen.
 * Exit 0 when every probe passed, 1 when one failed, 2 on a usage error.
 * --wait S: repeat the whole set a second apart until every probe passes
 * or S seconds have gone by (a NetworkPolicy reaches a new pod late);
 * only the last round is printed.
 */
#define _GNU_SOURCE
#include "kap_shim_netcheck.h"
#include "kap_shim_connect_reply.h"
#include "kap_shim_dns_reply.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NC_HEAD_MAX 8192

static int nc_timeout_ms = 3000;

/* "1.2.3.4:80" or "[::1]:80" into ss; 0 or -1. */
static int
nc_addr(const char *s, size_t n, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *colon;
    char *end;
    long port;

    memset(ss, 0, sizeof(*ss));
    if (n == 0 || n >= sizeof(host) + 8)
        return -1;
    colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || end != s + n || port < 1 || port > 65535)
        return -1;
    if (host[0] == '[') {
        size_t hl = strlen(host);
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        if (hl < 3 || host[hl - 1] != ']')
            return -1;
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            return -1;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return -1;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof(*s4);
    return 0;
}

/* Non-blocking connect with the timeout: fd, or -1 with *why set. */
static int
nc_tcp(const struct sockaddr_storage *ss, socklen_t len, const char **why)
{
    struct pollfd p;
    int fd, err = 0, r;
    socklen_t el = sizeof(err);

    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)ss, len) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        *why = strerror(errno);
        close(fd);
        return -1;
    }
    p.fd = fd;
    p.events = POLLOUT;
    do
        r = poll(&p, 1, nc_timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        *why = "no answer within the timeout";
        close(fd);
        return -1;
    }
    if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
        *why = strerror(err ? err : errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* Read into buf until pred says done, EOF, or the deadline; bytes read. */
static size_t
nc_read_head(int fd, char *buf, size_t size, struct kap_connect_reply *rep,
             int *rc)
{
    size_t len = 0;
    struct pollfd p = { fd, POLLIN, 0 };

    *rc = 0;
    while (len < size && *rc == 0) {
        int r = poll(&p, 1, nc_timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t n = read(fd, buf + len, size - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        *rc = kap_connect_reply_parse(buf, len, rep);
    }
    return len;
}

static int
nc_probe_tcp(const char *arg, char *seen, size_t ssz)
{
    struct sockaddr_storage ss;
    socklen_t len;
    const char *why = NULL;
    int fd;

    if (nc_addr(arg, strlen(arg), &ss, &len) != 0)
        return -2;
    fd = nc_tcp(&ss, len, &why);
    if (fd < 0) {
        snprintf(seen, ssz, "not connected: %s", why);
        return 0;
    }
    close(fd);
    snprintf(seen, ssz, "connected");
    return 1;
}

static int
nc_probe_dns(const char *arg, char *seen, size_t ssz)
{
    static const char *const rcodes[] = { "NOERROR", "FORMERR", "SERVFAIL",
                                          "NXDOMAIN", "NOTIMP", "REFUSED" };
    const char *slash = strchr(arg, '/');
    struct sockaddr_storage ss;
    socklen_t len;
    unsigned char q[300], a[512];
    struct kap_dns_reply rep;
    size_t n = 12;
    const char *name, *dot;
    struct pollfd p;
    int fd, r;
    ssize_t got;
    unsigned id = (unsigned)(time(NULL) ^ getpid()) & 0xffff;

    if (slash == NULL || nc_addr(arg, (size_t)(slash - arg), &ss, &len) != 0
        || slash[1] == '\0' || strlen(slash + 1) > 253)
        return -2;
    memset(q, 0, sizeof(q));
    q[0] = (unsigned char)(id >> 8);
    q[1] = (unsigned char)id;
    q[2] = 0x01;                        /* RD */
    q[5] = 1;                           /* QDCOUNT */
    for (name = slash + 1; *name; name = *dot ? dot + 1 : dot) {
        dot = strchr(name, '.');
        if (dot == NULL)
            dot = name + strlen(name);
        if (dot == name || dot - name > 63)
            return -2;
        q[n++] = (unsigned char)(dot - name);
        memcpy(q + n, name, (size_t)(dot - name));
        n += (size_t)(dot - name);
    }
    q[n++] = 0;
    q[n++] = 0; q[n++] = 1;             /* A */
    q[n++] = 0; q[n++] = 1;             /* IN */
    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0
        || send(fd, q, n, 0) != (ssize_t)n) {
        snprintf(seen, ssz, "no answer: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return 0;
    }
    p.fd = fd;
    p.events = POLLIN;
    for (;;) {
        r = poll(&p, 1, nc_timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(seen, ssz, "no answer within the timeout");
            close(fd);
            return 0;
        }
        got = recv(fd, a, sizeof(a), 0);
        if (got < 0) {
            snprintf(seen, ssz, "no answer: %s", strerror(errno));
            close(fd);
            return 0;
        }
        if (kap_dns_reply_check(q, n, a, (size_t)got, &rep))
            break;                      /* ours; anything else is ignored */
    }
    close(fd);
    snprintf(seen, ssz, "answered %s, %u record(s)",
             rep.rcode < sizeof(rcodes) / sizeof(rcodes[0])
             ? rcodes[rep.rcode] : "rcode", rep.ancount);
    return 1;
}

static int
nc_probe_connect(const char *arg, char *seen, size_t ssz)
{
    const char *slash = strchr(arg, '/');
    struct sockaddr_storage ss;
    struct kap_connect_reply rep;
    char req[600], head[NC_HEAD_MAX];
    socklen_t len;
    const char *why = NULL;
    int fd, rc, n;

    if (slash == NULL || nc_addr(arg, (size_t)(slash - arg), &ss, &len) != 0
        || slash[1] == '\0' || strlen(slash + 1) > 260
        || strpbrk(slash + 1, " \r\n\t") != NULL)
        return -2;
    fd = nc_tcp(&ss, len, &why);
    if (fd < 0) {
        snprintf(seen, ssz, "proxy not reached: %s", why);
        return 0;
    }
    n = snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                 slash + 1, slash + 1);
    if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
        snprintf(seen, ssz, "proxy write failed");
        close(fd);
        return 0;
    }
    memset(&rep, 0, sizeof(rep));
    nc_read_head(fd, head, sizeof(head), &rep, &rc);
    close(fd);
    if (rc != 1) {
        snprintf(seen, ssz, "no valid answer from the proxy");
        return 0;
    }
    snprintf(seen, ssz, "proxy answered %d %s", rep.status, rep.reason);
    return rep.status == 200;
}

static void
nc_usage(FILE *f)
{
    fprintf(f,
"usage: kap-shim netcheck [--timeout SECONDS] [--wait SECONDS] PROBE...\n"
"  PROBE: --open|--blocked tcp:HOST:PORT\n"
"         --open|--blocked dns:HOST:PORT/NAME\n"
"         --open|--blocked connect:HOST:PORT/TARGET:TPORT\n"
"HOST is a numeric IPv4 or [IPv6] address.  One PASS/FAIL line per probe;\n"
"exit 0 when all passed, 1 when one failed, 2 on a usage error.\n"
"--wait: run the probes again, a second apart, until all pass or SECONDS\n"
"have gone by; only the last round is printed.\n");
}

/* one probe: the result of its nc_probe_*() (1 open, 0 not, -2 bad) */
static int
nc_probe(const char *spec, char *seen, size_t ssz)
{
    seen[0] = '\0';
    if (strncmp(spec, "tcp:", 4) == 0)
        return nc_probe_tcp(spec + 4, seen, ssz);
    if (strncmp(spec, "dns:", 4) == 0)
        return nc_probe_dns(spec + 4, seen, ssz);
    if (strncmp(spec, "connect:", 8) == 0)
        return nc_probe_connect(spec + 8, seen, ssz);
    return -2;
}

/* every probe once (argv[i] is "--open" or "--blocked", argv[i + 1] the
   probe); printed when print; the number that failed, or -1 for a bad
   probe */
static int
nc_round(int n, char **argv, int print)
{
    int i, fails = 0;

    for (i = 0; i < n; i += 2) {
        char seen[300];
        int want_open = argv[i][2] == 'o';
        int got = nc_probe(argv[i + 1], seen, sizeof(seen));

        if (got == -2) {
            fprintf(stderr, "kap-shim netcheck: bad probe \"%s\"\n",
                    argv[i + 1]);
            return -1;
        }
        if (got != want_open)
            fails++;
        if (print) {
            printf("%s %s %s (%s)\n", got == want_open ? "PASS" : "FAIL",
                   want_open ? "open" : "blocked", argv[i + 1], seen);
            fflush(stdout);
        }
    }
    return fails;
}

static int
nc_seconds(const char *s, double max, double *out)
{
    char *end;

    *out = strtod(s, &end);
    return *end == '\0' && end != s && *out > 0 && *out <= max ? 0 : -1;
}

int
kap_shim_netcheck(int argc, char **argv)
{
    struct timespec start, now;
    double t, wait_s = 0;
    char **probes;
    int i, n = 0, fails;

    probes = calloc((size_t)argc, sizeof(*probes));
    if (probes == NULL) {
        perror("kap-shim netcheck");
        return 2;
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            nc_usage(stdout);
            free(probes);
            return 0;
        }
        if ((strcmp(a, "--timeout") == 0 || strcmp(a, "--wait") == 0)
            && i + 1 < argc && nc_seconds(argv[i + 1], a[2] == 't' ? 600
                                          : 86400, &t) == 0) {
            if (a[2] == 't')
                nc_timeout_ms = (int)(t * 1000);
            else
                wait_s = t;
            i++;
            continue;
        }
        if ((strcmp(a, "--open") == 0 || strcmp(a, "--blocked") == 0)
            && i + 1 < argc) {
            probes[n++] = argv[i];
            probes[n++] = argv[++i];
            continue;
        }
        n = 0;
        break;
    }
    if (n == 0) {
        nc_usage(stderr);
        free(probes);
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        t = (double)(now.tv_sec - start.tv_sec)
            + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        if (wait_s <= 0 || t + 1 >= wait_s)
            break;                      /* the last round: printed */
        fails = nc_round(n, probes, 0);
        if (fails <= 0)
            break;                      /* all passed (print them), or bad */
        sleep(1);
    }
    fails = nc_round(n, probes, 1);
    free(probes);
    if (fails < 0) {
        nc_usage(stderr);
        return 2;
    }
    return fails ? 1 : 0;
}
