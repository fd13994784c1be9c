/*
 * test_cli_req.c -- the cli module's request decoder (strict: args are
 * strings only, never dropped; unknown and duplicate keys refused; limits)
 * and which peers may receive a direct-mode environment (unix sockets and
 * loopback only).
 */
#include "kap_cli.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "tap.h"

static int
dec(const char *body, struct kap_cli_req *r, struct kap_err *e)
{
    static struct kap_pool *pool;

    if (pool == NULL)
        pool = kap_pool_create();
    memset(e, 0, sizeof(*e));
    return kap_cli_req_decode(pool, body, strlen(body), r, e);
}

static void
test_decode(void)
{
    struct kap_cli_req r;
    struct kap_err     e;
    static const struct { const char *body, *why; } bad[] = {
        { "{\"args\":[\"a\",1]}", "\"args\"[1] is not a string" },
        { "{\"args\":[null]}", "\"args\"[0] is not a string" },
        { "{\"args\":[[\"x\"]]}", "" },
        { "{\"args\":\"a b\"}", "must be an array" },
        { "{\"args\":[],\"env\":{}}", "unknown key \"env\"" },
        { "{\"args\":[],\"stdin\":\"\"}", "unknown key \"stdin\"" },
        { "{\"args\":[\"a\"],\"args\":[\"b\"]}", "duplicate" },
        { "{\"cwd\":\"/\"}", "no \"args\"" },
        { "{\"args\":[],\"cwd\":1}", "\"cwd\" must be a string" },
        { "[\"a\"]", "JSON object" },
        { "{\"args\":[\"\\u0000\"]}", "" },
        { "{\"args\":[\"\xff\"]}", "" },
        { "", "" },
    };
    size_t i;

    is_int(dec("{\"args\":[\"pr\",\"list\",\"--\",\"\"],\"cwd\":\"/ws\"}",
               &r, &e), KAP_OK, "a request");
    is_int(r.nargs, 4, "four words, the empty one kept");
    is_str(r.args[1], "list", "in order");
    ok(r.args[4] == NULL, "NULL-terminated");
    is_str(r.cwd, "/ws", "cwd");
    is_int(dec("{\"args\":[]}", &r, &e), KAP_OK, "empty argv is a request");
    ok(r.cwd == NULL && r.nargs == 0, "no cwd, no words");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = dec(bad[i].body, &r, &e);
        ok(rc == KAP_ERROR && e.msg[0] != '\0'
           && strstr(e.msg, bad[i].why) != NULL,
           "refused: %s (%s)", bad[i].body, e.msg);
    }
}

static void
test_peer(void)
{
    struct sockaddr_storage ss;
    struct sockaddr_in     *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6    *s6 = (struct sockaddr_in6 *)&ss;
    static const struct { const char *ip; int local; } v4[] = {
        { "127.0.0.1", 1 }, { "127.9.9.9", 1 }, { "10.0.0.1", 0 },
        { "172.17.0.2", 0 }, { "0.0.0.0", 0 }, { "128.0.0.1", 0 },
    };
    static const struct { const char *ip; int local; } v6[] = {
        { "::1", 1 }, { "::ffff:127.0.0.2", 1 }, { "::ffff:10.0.0.1", 0 },
        { "fe80::1", 0 }, { "::", 0 }, { "::127.0.0.1", 0 },
    };
    size_t i;

    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    ok(kap_cli_peer_local(&ss, sizeof(struct sockaddr_un)), "unix socket");
    for (i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
        memset(&ss, 0, sizeof(ss));
        s4->sin_family = AF_INET;
        inet_pton(AF_INET, v4[i].ip, &s4->sin_addr);
        is_int(kap_cli_peer_local(&ss, sizeof(*s4)), v4[i].local, v4[i].ip);
    }
    for (i = 0; i < sizeof(v6) / sizeof(v6[0]); i++) {
        memset(&ss, 0, sizeof(ss));
        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, v6[i].ip, &s6->sin6_addr);
        is_int(kap_cli_peer_local(&ss, sizeof(*s6)), v6[i].local, v6[i].ip);
    }
    memset(&ss, 0, sizeof(ss));
    s4->sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &s4->sin_addr);
    ok(!kap_cli_peer_local(&ss, 4), "a short address is not trusted");
}

int
main(void)
{
    test_decode();
    test_peer();
    return done_testing();
}
