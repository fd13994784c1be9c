/*
 * kap_shim_cli.c -- kap-shim's shim role (see kap_shim_cli.h).
 */
#define _GNU_SOURCE
#include "kap_shim_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "kap_shim_cli_reply.h"
#include "kap_shim_jsonc.h"

#define CLI_ADDR        "127.0.0.1:3130"
#define CLI_DENIED      126
#define CLI_FAILED      125

static const char *tool_name = "?";

static void
say(const char *fmt, const char *a)
{
    fprintf(stderr, "kap: %s: ", tool_name);
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
}

/* ---- a growable buffer ---------------------------------------------------- */

struct sbuf {
    char   *p;
    size_t  len, cap;
};

static int
sb_add(struct sbuf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char  *q = realloc(b->p, cap);
        if (q == NULL)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int
sb_str(struct sbuf *b, const char *s)
{
    return sb_add(b, s, strlen(s));
}

/* s as a JSON string (bytes >= 0x80 as they are: kapd checks UTF-8) */
static int
sb_json(struct sbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = sb_add(b, "\"", 1);

    for (; rc == 0 && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char)c };
            rc = sb_add(b, e, 2);
        } else if (c < 0x20) {
            char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            rc = sb_add(b, e, 6);
        } else {
            rc = sb_add(b, s, 1);
        }
    }
    return rc != 0 ? rc : sb_add(b, "\"", 1);
}

/* ---- the connection ----------------------------------------------------------- */

static int
dial(void)
{
    const char *sock = getenv("KAP_CLI_SOCKET");
    const char *addr = getenv("KAP_CLI_ADDR");
    int         fd;

    if (sock != NULL && *sock != '\0') {
        struct sockaddr_un un;
        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        if (strlen(sock) >= sizeof(un.sun_path)) {
            say("KAP_CLI_SOCKET is too long: %s", sock);
            return -1;
        }
        memcpy(un.sun_path, sock, strlen(sock));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof(un)) != 0) {
            say("cannot reach kapd's cli socket %s", sock);
            if (fd >= 0)
                close(fd);
            return -1;
        }
        return fd;
    }
    if (addr == NULL || *addr == '\0')
        addr = CLI_ADDR;
    {
        char               host[64];
        const char        *colon = strrchr(addr, ':');
        struct sockaddr_in in4;
        size_t             hl = colon != NULL ? (size_t)(colon - addr) : 0;

        memset(&in4, 0, sizeof(in4));
        in4.sin_family = AF_INET;
        if (colon == NULL || hl == 0 || hl >= sizeof(host)) {
            say("KAP_CLI_ADDR is not HOST:PORT: %s", addr);
            return -1;
        }
        memcpy(host, addr, hl);
        host[hl] = '\0';
        in4.sin_port = htons((unsigned short)strtoul(colon + 1, NULL, 10));
        if (inet_pton(AF_INET, host, &in4.sin_addr) != 1) {
            say("KAP_CLI_ADDR needs an IPv4 address: %s", addr);
            return -1;
        }
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&in4, sizeof(in4)) != 0) {
            say("cannot reach kapd's cli listener at %s", addr);
            if (fd >= 0)
                close(fd);
            return -1;
        }
    }
    return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int
on_out(int stream, const char *p, size_t n, void *data)
{
    (void)data;
    return write_all(stream == 1 ? 1 : 2, p, n);
}

/* ---- direct mode --------------------------------------------------------------- */

/* The real tool on PATH: not kap-shim itself, not in KAP_CLI_SHIM_DIR. */
static char *
find_real(const char *tool)
{
    const char *path = getenv("PATH"), *skip = getenv("KAP_CLI_SHIM_DIR");
    struct stat self, st;
    char        cand[PATH_MAX];
    int         have_self = stat("/proc/self/exe", &self) == 0;

    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path != '\0') {
        const char *e = strchr(path, ':');
        size_t      l = e != NULL ? (size_t)(e - path) : strlen(path);

        if (l > 0 && !(skip != NULL && strlen(skip) == l
                       && memcmp(skip, path, l) == 0)
            && l + strlen(tool) + 2 < sizeof(cand)) {
            memcpy(cand, path, l);
            cand[l] = '/';
            memcpy(cand + l + 1, tool, strlen(tool) + 1);
            if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)
                && access(cand, X_OK) == 0
                && !(have_self && st.st_dev == self.st_dev
                     && st.st_ino == self.st_ino))
                return strdup(cand);
        }
        path += l;
        if (*path == ':')
            path++;
    }
    return NULL;
}

static int
direct(const char *body, size_t len, char **argv)
{
    struct kap_jsonc doc;
    int              env, m;
    char            *real;

    memset(&doc, 0, sizeof(doc));
    if (kap_jsonc_parse(&doc, body, len) != 0
        || doc.nodes[0].type != KAP_JSONC_OBJECT) {
        kap_jsonc_free(&doc);
        say("%s", "kapd's answer is not JSON");
        return CLI_FAILED;
    }
    env = kap_jsonc_member(&doc, 0, "env", 3, NULL);
    if (env >= 0 && doc.nodes[env].type == KAP_JSONC_OBJECT) {
        for (m = doc.nodes[env].first; m >= 0; m = doc.nodes[m].next) {
            char  *name = NULL, *val = NULL;
            size_t nl, vl;
            const struct kap_jsonc_node *nd = &doc.nodes[m];
            if (nd->type != KAP_JSONC_STRING
                || kap_jsonc_decode(body, nd->key_start, nd->key_end, &name,
                                    &nl) != 0
                || kap_jsonc_decode(body, nd->start, nd->end, &val, &vl) != 0
                || setenv(name, val, 1) != 0) {
                free(name);
                free(val);
                kap_jsonc_free(&doc);
                say("%s", "kapd's environment is malformed");
                return CLI_FAILED;
            }
            memset(val, 0, vl);
            free(name);
            free(val);
        }
    }
    kap_jsonc_free(&doc);
    real = find_real(tool_name);
    if (real == NULL) {
        say("%s", "not installed in the capsule (direct mode runs the real "
            "tool here)");
        return 127;
    }
    argv[0] = (char *)tool_name;
    execv(real, argv);
    say("cannot run %s", real);
    free(real);
    return 126;
}

/* stdin is a terminal (never read: the tool runs outside the capsule,
   without one) or not open: the tool gets an EOF at once. */
static int
no_stdin(void)
{
    return isatty(0) || fcntl(0, F_GETFD) < 0;
}

/* What the decoded answer means for the shim's exit. */
static int
finish(struct kap_cli_reply *r, const char *tool, char **argv)
{
    char hdr[32];
    int  rc;

    if ((r->status == 200 || r->status == 101) && r->framed && r->have_exit) {
        rc = r->exit_code;
        if (strcmp(r->why, "signal") == 0 && rc > 128 && rc < 128 + 65) {
            kap_cli_reply_free(r);
            signal(rc - 128, SIG_DFL);
            raise(rc - 128);
        }
        kap_cli_reply_free(r);
        return rc;
    }
    if (r->status == 200 && !r->framed && r->body != NULL) {
        rc = direct(r->body, r->body_len, argv);
        kap_cli_reply_free(r);
        return rc;
    }
    snprintf(hdr, sizeof(hdr), "%d", r->status);
    say("kapd refused the call (%s)", hdr);
    if (r->body != NULL)
        fprintf(stderr, "kap: %s: %.*s\n", tool, (int)strcspn(r->body, "\n"),
                r->body);
    kap_cli_reply_free(r);
    return CLI_DENIED;
}

/* ---- the call ------------------------------------------------------------------ */

/*
 * The exchange after the request is written: kapd's answer is decoded as
 * it comes; once it is a 101 (proxy mode), stdin goes to kapd in frames
 * (id 0, 4-byte length, bytes; a frame of length 0 is the EOF) while
 * stdout and stderr frames come back.  stdin is read only when the
 * previous frame has left (kapd's backpressure reaches the reader of our
 * stdin), and never blocks the output: one poll() over both.
 */
struct call {
    int                  fd;
    int                  in_done;      /* EOF frame queued (or no stdin) */
    int                  out_dead;     /* kapd stopped reading: drop stdin */
    struct sbuf          out;          /* bytes for kapd not yet sent */
    size_t               out_off;
    struct kap_cli_reply r;
};

static int
queue_frame(struct call *k, const char *p, size_t n)
{
    unsigned char h[5];

    h[0] = 0;
    h[1] = (unsigned char)(n >> 24);
    h[2] = (unsigned char)(n >> 16);
    h[3] = (unsigned char)(n >> 8);
    h[4] = (unsigned char)n;
    if (k->out_dead)
        return 0;
    if (sb_add(&k->out, h, sizeof(h)) != 0
        || (n > 0 && sb_add(&k->out, p, n) != 0))
        return -1;
    return 0;
}

/* Send what is queued without blocking; a kapd that is gone (it closes
   once the tool has exited) only stops the sending. */
static void
flush_out(struct call *k)
{
    while (k->out_off < k->out.len) {
        ssize_t w = send(k->fd, k->out.p + k->out_off, k->out.len - k->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w <= 0) {
            k->out_dead = 1;
            break;
        }
        k->out_off += (size_t)w;
    }
    k->out.len = k->out_off = 0;
}

/* One read of our stdin into a frame; EOF or an error: the EOF frame. */
static int
pump_stdin(struct call *k)
{
    char    buf[65536];
    ssize_t n = read(0, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0) {
        k->in_done = 1;
        return queue_frame(k, NULL, 0);
    }
    return queue_frame(k, buf, (size_t)n);
}

/* Run the exchange to kapd's last byte; 0, or -1 (said why). */
static int
converse(struct call *k)
{
    char buf[65536];

    for (;;) {
        struct pollfd pf[2];
        nfds_t        np = 1;
        ssize_t       n;

        if (k->r.upgraded && !k->in_done && k->out.len == 0 && k->out_dead)
            k->in_done = 1;
        pf[0].fd = k->fd;
        pf[0].events = POLLIN | (k->out.len > k->out_off ? POLLOUT : 0);
        pf[0].revents = 0;
        if (k->r.upgraded && !k->in_done && k->out.len == 0) {
            pf[1].fd = 0;
            pf[1].events = POLLIN;
            pf[1].revents = 0;
            np = 2;
        }
        if (poll(pf, np, -1) < 0) {
            if (errno == EINTR)
                continue;
            say("%s", "poll failed");
            return -1;
        }
        if (pf[0].revents & POLLOUT)
            flush_out(k);
        if (np == 2 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
            if (pump_stdin(k) != 0) {
                say("%s", "out of memory");
                return -1;
            }
            flush_out(k);
        }
        if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        n = recv(k->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN
                      || errno == EWOULDBLOCK))
            continue;
        if (n < 0)
            n = 0;
        if (kap_cli_reply_feed(&k->r, buf, (size_t)n, on_out, NULL) != 0) {
            say("bad answer from kapd: %s", k->r.error);
            return -1;
        }
        if (k->r.done || n == 0)
            return 0;
        if (k->r.upgraded && k->in_done == 0 && no_stdin()) {
            k->in_done = 1;      /* a terminal or no stdin: EOF at once */
            if (queue_frame(k, NULL, 0) != 0) {
                say("%s", "out of memory");
                return -1;
            }
            flush_out(k);
        }
    }
}

int
kap_shim_cli_tool(const char *tool, int argc, char **argv)
{
    struct sbuf  body = { 0 };
    struct call  k;
    char         cwd[PATH_MAX], hdr[1024];
    int          i, rc, hl;

    tool_name = tool;
    signal(SIGPIPE, SIG_DFL);
    memset(&k, 0, sizeof(k));
    rc = sb_str(&body, "{\"args\":[");
    for (i = 1; rc == 0 && i < argc; i++) {
        if (i > 1)
            rc = sb_str(&body, ",");
        if (rc == 0)
            rc = sb_json(&body, argv[i]);
    }
    if (rc == 0)
        rc = sb_str(&body, "]");
    if (rc == 0 && getcwd(cwd, sizeof(cwd)) != NULL) {
        rc = sb_str(&body, ",\"cwd\":");
        if (rc == 0)
            rc = sb_json(&body, cwd);
    }
    if (rc == 0)
        rc = sb_str(&body, "}");
    /* Upgrade: kap-cli asks for streamed stdin (a proxy-mode tool answers
       101; a direct-mode one its JSON as before) */
    hl = snprintf(hdr, sizeof(hdr), "POST /%s HTTP/1.1\r\nHost: kap\r\n"
                  "Content-Type: application/json\r\nConnection: Upgrade\r\n"
                  "Upgrade: kap-cli\r\nContent-Length: %zu\r\n\r\n", tool,
                  body.len);
    if (hl < 0 || (size_t)hl >= sizeof(hdr))
        rc = -1;                          /* a tool name that long: refused */
    if (rc == 0)
        rc = sb_str(&k.out, hdr);
    if (rc == 0)
        rc = sb_add(&k.out, body.p, body.len);
    free(body.p);
    if (rc != 0) {
        free(k.out.p);
        say("%s", "out of memory");
        return CLI_FAILED;
    }
    k.fd = dial();
    if (k.fd < 0) {
        free(k.out.p);
        return CLI_FAILED;
    }
    rc = write_all(k.fd, k.out.p, k.out.len);
    k.out.len = 0;
    if (rc != 0) {
        free(k.out.p);
        close(k.fd);
        say("%s", "kapd closed the connection");
        return CLI_FAILED;
    }
    kap_cli_reply_init(&k.r);
    rc = converse(&k);
    free(k.out.p);
    close(k.fd);
    if (rc != 0) {
        kap_cli_reply_free(&k.r);
        return CLI_FAILED;
    }
    return finish(&k.r, tool, argv);
}

int
kap_shim_cli(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '\0' || strchr(argv[1], '/') != NULL) {
        fprintf(stderr, "usage: kap-shim cli TOOL [ARGS...]\n");
        return 2;
    }
    return kap_shim_cli_tool(argv[1], argc - 1, argv + 1);
}
