/*
 * test_remote_rule.c -- "allow always" as text (modules/remote/
 * kap_remote_rule.c): the network.allow entry a question becomes (host
 * names only: nothing else may reach a policy file), and that entry
 * added to a policy file's text with its comments and layout kept.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "kap_remote.h"

static char got[4096];
static unsigned got_line;

/* the text with entry added, into got; the return code of the insert */
static int
ins(const char *text, const char *entry)
{
    struct kap_buf b = { 0 };
    const char *why = NULL;
    int rc;

    got[0] = '\0';
    rc = kr_rule_insert(text, strlen(text), entry, &b, &got_line, &why);
    if (rc == KAP_OK && b.len < sizeof(got)) {
        memcpy(got, b.data, b.len);
        got[b.len] = '\0';
    }
    if (rc == KAP_ERROR && (why == NULL || why[0] == '\0'))
        rc = -100;                      /* a refusal without a reason */
    kap_buf_free(&b);
    return rc;
}

static int
entry_is(uint32_t kind, const char *subject, unsigned port, const char *want)
{
    char out[300];
    const char *why = NULL;
    int rc = kr_rule_entry(kind, subject, port, out, sizeof(out), &why);

    if (want == NULL)
        return rc == KAP_ERROR && why != NULL;
    return rc == KAP_OK && strcmp(out, want) == 0;
}

int
main(void)
{
    char big[400];

    plan(17);
    ok(entry_is(KAP_REQ_HTTP, "api.example.com", 443, "api.example.com:443")
       && entry_is(KAP_REQ_CONNECT, "a-b.example", 8443, "a-b.example:8443")
       && entry_is(KAP_REQ_DNS, "example.com", 53, "example.com")
       && entry_is(KAP_REQ_HTTP, "127.0.0.2", 80, "127.0.0.2:80"),
       "entries: host:port, a name for dns");
    memset(big, 'a', 64);
    big[64] = '\0';
    ok(entry_is(KAP_REQ_HTTP, "x\", \"*", 443, NULL)
       && entry_is(KAP_REQ_HTTP, "*.example.com", 443, NULL)
       && entry_is(KAP_REQ_HTTP, "a\nb", 443, NULL)
       && entry_is(KAP_REQ_HTTP, "a..b", 443, NULL)
       && entry_is(KAP_REQ_HTTP, ".a", 443, NULL)
       && entry_is(KAP_REQ_HTTP, "-a.b", 443, NULL)
       && entry_is(KAP_REQ_HTTP, "a-.b", 443, NULL)
       && entry_is(KAP_REQ_HTTP, "::1", 443, NULL)
       && entry_is(KAP_REQ_HTTP, "", 443, NULL)
       && entry_is(KAP_REQ_HTTP, big, 443, NULL)
       && entry_is(KAP_REQ_HTTP, "a#b", 443, NULL),
       "subjects that are not host names are refused");
    ok(entry_is(KAP_REQ_MCP_CALL, "tool", 0, NULL), "an mcp question is no network rule");

    is_int(ins("# top\nnetwork: {\n    allow = [\"a.com\",  # a\n             \"b.com\"   # b\n    ];\n};\n",
               "c.com:443"), KAP_OK, "added to a list");
    is_str(got, "# top\nnetwork: {\n    allow = [\"a.com\",  # a\n             \"b.com\", \"c.com:443\"   # b\n    ];\n};\n",
           "after the last element, comments kept");
    is_int(got_line, 4, "on the last element's line");
    is_int(ins("network: { allow = []; };\n", "c.com"), KAP_OK, "an empty list");
    is_str(got, "network: { allow = [\"c.com\"]; };\n", "gets the entry");
    is_int(ins("// x\nnetwork = {\n  ports = [80];\n  /* allow = [\"z\"]; */\n};\n",
               "c.com"), KAP_OK, "a group without allow");
    is_str(got, "// x\nnetwork = {\n    allow = [\"c.com\"];\n  ports = [80];\n  /* allow = [\"z\"]; */\n};\n",
           "gets an allow list on top (a commented one does not count)");
    is_int(ins("kapd: { network: { allow = [\"x\"]; }; };\nresolver: { timeout = 5; };",
               "c.com"), KAP_OK, "no top-level network group");
    is_str(got, "kapd: { network: { allow = [\"x\"]; }; };\nresolver: { timeout = 5; };\nnetwork: {\n    allow = [\"c.com\"];\n};\n",
           "one is added at the end");
    is_int(got_line, 4, "its line");
    ok(ins("network: { allow = [\"a.com\", \"c.com\"]; };\n", "c.com") == KAP_DECLINED
       && got_line == 1, "an entry there already is not added twice");
    ok(ins("network: { allow = \"a.com\"; };", "c.com") == KAP_ERROR
       && ins("network: { allow = [\"a.com\"; };", "c.com") == KAP_ERROR
       && ins("network: { allow = [\"a.com]; };", "c.com") == KAP_ERROR
       && ins("network: { allow = [1, 2]; };", "c.com") == KAP_ERROR
       && ins("network: { /* allow = [\"a\"]; };", "c.com") == KAP_ERROR
       && ins("@include \"/etc/passwd\"\nnetwork: { allow = []; };", "c.com") == KAP_ERROR
       && ins("network: { allow = [\"a\"]; }; }", "c.com") == KAP_ERROR,
       "texts that are not libconfig, or no list of strings, are refused with a reason");
    ok(ins("network: { allow = [\"a\",]; };", "c.com") == KAP_OK
       && strcmp(got, "network: { allow = [\"a\", \"c.com\"]; };") == 0,
       "after a trailing comma");
    ok(ins("network: {\n    allow = (\"a.com\");\n};\n", "c.com") == KAP_OK
       && strstr(got, "(\"a.com\", \"c.com\")") != NULL, "a libconfig list () too");
    return done_testing();
}
