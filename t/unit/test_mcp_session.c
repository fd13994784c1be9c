/*
 * test_mcp_session.c -- the mcp module's session map
 * (modules/mcp/kap_mcp_session.c): kapd's own ids (32 hex digits, a new
 * one per session), found only for the server and client they were
 * issued to, the upstream id replaced in place, deleted, the least
 * recently used session evicted past the limit, and everything freed by
 * kap_mcp_session_clear() (the ASan/valgrind runs see leaks).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "kap_mcp_mod.h"
#include "tap.h"

static int
hex32(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return i == 32;
}

int
main(void)
{
    char a[33], b[33], c[33], first[33], up[32];
    const char *g;
    int i, rc = KAP_OK;

    plan(15);
    ok(kap_mcp_session_put("gh", "10.0.0.1", NULL, "up-A", a) == KAP_OK,
       "a session is made");
    ok(hex32(a), "its id is 32 hex digits");
    ok(kap_mcp_session_put("gh", "10.0.0.1", NULL, "up-B", b) == KAP_OK
       && strcmp(a, b) != 0, "another session, another id");
    is_str(kap_mcp_session_get("gh", "10.0.0.1", a), "up-A",
           "found for its server and client");
    ok(kap_mcp_session_get("gh", "10.0.0.2", a) == NULL,
       "not for another client");
    ok(kap_mcp_session_get("linear", "10.0.0.1", a) == NULL,
       "not for another server");
    ok(kap_mcp_session_get("gh", "10.0.0.1", "up-A") == NULL,
       "the upstream's id is no key");
    ok(kap_mcp_session_put("gh", "10.0.0.1", a, "up-A2", c) == KAP_OK
       && strcmp(a, c) == 0, "a new upstream id keeps the agent's id");
    is_str(kap_mcp_session_get("gh", "10.0.0.1", a), "up-A2",
           "and maps to the new one");
    ok(kap_mcp_session_put("gh", "10.0.0.9", a, "up-X", c) == KAP_OK
       && strcmp(a, c) != 0, "another client naming the id gets its own");
    is_str(kap_mcp_session_get("gh", "10.0.0.1", a), "up-A2",
           "and the first session is untouched");
    kap_mcp_session_del(a);
    ok(kap_mcp_session_get("gh", "10.0.0.1", a) == NULL, "deleted");

    /* past the limit the least recently used goes */
    ok(kap_mcp_session_put("gh", "10.0.0.3", NULL, "oldest", first)
       == KAP_OK, "an old session");
    for (i = 0; i < 5000 && rc == KAP_OK; i++) {
        snprintf(up, sizeof(up), "up-%d", i);
        rc = kap_mcp_session_put("gh", "10.0.0.4", NULL, up, c);
        if (i == 10)
            (void)kap_mcp_session_get("gh", "10.0.0.1", b);  /* touch b */
    }
    g = kap_mcp_session_get("gh", "10.0.0.3", first);
    ok(rc == KAP_OK && g == NULL, "5000 more: the oldest was evicted");
    is_str(kap_mcp_session_get("gh", "10.0.0.4", c), "up-4999",
           "the newest is kept");
    kap_mcp_session_clear();
    return done_testing();
}
