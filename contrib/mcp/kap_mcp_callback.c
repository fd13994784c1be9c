/*
 * kap_mcp_callback.c -- the OAuth redirect's loopback listener
 * (kap_mcp_cli.h): 127.0.0.1 on an ephemeral port, held open until the
 * browser brings the code with the right state, an error, or the
 * timeout.  One connection at a time; a request line longer than the
 * buffer, another path or a request without the state is answered and
 * ignored.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_module.h>

#include "kap_mcp_cli.h"
#include "kap_mcp_oauth.h"

#define CB_REQ_MAX 8192

int
mcpc_cb_open(struct mcpc_cb *cb, struct kap_err *err)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);

    cb->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (cb->fd < 0 || bind(cb->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0
        || listen(cb->fd, 8) != 0
        || getsockname(cb->fd, (struct sockaddr *)&sa, &sl) != 0) {
        kap_err_set(err, "cannot listen on 127.0.0.1 for the OAuth "
                    "callback: %s", strerror(errno));
        if (cb->fd >= 0)
            close(cb->fd);
        cb->fd = -1;
        return KAP_ERROR;
    }
    cb->port = ntohs(sa.sin_port);
    return KAP_OK;
}

void
mcpc_cb_close(struct mcpc_cb *cb)
{
    if (cb->fd >= 0)
        close(cb->fd);
    cb->fd = -1;
}

static void
cb_answer(int fd, const char *status, const char *text)
{
    char out[1024];
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8"
                     "\r\nCache-Control: no-store\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s", status, strlen(text),
                     text);

    if (n > 0 && (size_t)n < sizeof(out))
        (void)!write(fd, out, (size_t)n);
}

/* read the request head (up to its blank line) from fd within deadline */
static ssize_t
cb_read(int fd, char *buf, size_t cap, time_t deadline)
{
    size_t len = 0;

    while (len + 1 < cap) {
        struct pollfd p = { fd, POLLIN, 0 };
        ssize_t r;
        int left = (int)(deadline - time(NULL));
        if (left <= 0 || poll(&p, 1, left > 5 ? 5000 : left * 1000) <= 0)
            return -1;
        r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL || strstr(buf, "\n\n") != NULL)
            return (ssize_t)len;
    }
    return -1;
}

/*
 * One request: KAP_OK with the code, KAP_ERROR (err set) to end the wait,
 * KAP_DECLINED to keep waiting.
 */
static int
cb_one(int fd, const char *state, char *code, size_t codelen,
       time_t deadline, struct kap_err *err)
{
    char buf[CB_REQ_MAX], got[512], e[256];
    char *target, *sp, *q;

    if (cb_read(fd, buf, sizeof(buf), deadline) < 0)
        return KAP_DECLINED;
    if (strncmp(buf, "GET ", 4) != 0) {
        cb_answer(fd, "405 Method Not Allowed", "GET only\n");
        return KAP_DECLINED;
    }
    target = buf + 4;
    if ((sp = strchr(target, ' ')) == NULL)
        return KAP_DECLINED;
    *sp = '\0';
    q = strchr(target, '?');
    if (q != NULL)
        *q++ = '\0';
    if (strcmp(target, "/callback") != 0 || q == NULL) {
        cb_answer(fd, "404 Not Found", "not the OAuth callback\n");
        return KAP_DECLINED;
    }
    if (kap_mcp_query_get(q, "state", got, sizeof(got)) != KAP_OK
        || strcmp(got, state) != 0) {
        cb_answer(fd, "400 Bad Request", "kap: the state does not match: "
                  "this answer is not for the authorization kap started\n");
        kap_err_set(err, "the OAuth callback came with a wrong state: "
                    "refused (not the authorization kap started)");
        return KAP_ERROR;
    }
    if (kap_mcp_query_get(q, "error", e, sizeof(e)) == KAP_OK) {
        cb_answer(fd, "200 OK", "kap: the authorization was refused; see "
                  "the terminal\n");
        kap_err_set(err, "the authorization server said: %.200s", e);
        return KAP_ERROR;
    }
    if (kap_mcp_query_get(q, "code", code, codelen) != KAP_OK
        || code[0] == '\0') {
        cb_answer(fd, "400 Bad Request", "kap: no code in the callback\n");
        kap_err_set(err, "the OAuth callback brought no code");
        return KAP_ERROR;
    }
    cb_answer(fd, "200 OK", "kap: authorized. You can close this tab and "
              "go back to the terminal.\n");
    return KAP_OK;
}

int
mcpc_cb_wait(struct mcpc_cb *cb, const char *state, int timeout, char *code,
             size_t codelen, struct kap_err *err)
{
    time_t deadline = time(NULL) + timeout;

    for (;;) {
        struct pollfd p = { cb->fd, POLLIN, 0 };
        int left = (int)(deadline - time(NULL)), rc, c;
        if (left <= 0)
            break;
        if (poll(&p, 1, left * 1000) <= 0)
            continue;
        if ((c = accept(cb->fd, NULL, NULL)) < 0)
            continue;
        rc = cb_one(c, state, code, codelen, deadline, err);
        close(c);
        if (rc != KAP_DECLINED)
            return rc;
    }
    kap_err_set(err, "no answer from the browser within %d seconds "
                "(KAP_MCP_TIMEOUT)", timeout);
    return KAP_ERROR;
}
