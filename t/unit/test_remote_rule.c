/*
 * test_remote_rule.c -- "allow always" as text (modules/remote/
 * kap_remote_rule.c): the network.allow entry a question becomes (host
 * names only: nothing else may reach a policy file), and that entry
 * added to a policy file's text with its comments and layout kept.
 */
#define _GNU_SOURCE                     /* mkstemp */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* the text with entry added to the allow of section.list's element name */
static int
ins_at(const char *text, const char *section, const char *list,
       const char *name, const char *entry)
{
    struct kr_rule_at at = { section, list, name };
    struct kap_buf b = { 0 };
    const char *why = NULL;
    int rc;

    got[0] = '\0';
    rc = kr_rule_insert_at(text, strlen(text), &at, entry, &b, &got_line,
                           &why);
    if (rc == KAP_OK && b.len < sizeof(got)) {
        memcpy(got, b.data, b.len);
        got[b.len] = '\0';
    }
    if (rc == KAP_ERROR && (why == NULL || why[0] == '\0'))
        rc = -100;
    kap_buf_free(&b);
    return rc;
}

/* the rule of a question of kind about subject with the attribute name
   (NULL: none) = value: "section.list[name] entry", or "-" when refused */
static const char *
target(uint32_t kind, const char *subject, const char *name,
       const char *value)
{
    static char out[1200];
    struct kr_rule_at at;
    char entry[1100];
    const char *why = NULL;
    int srv = name != NULL && strcmp(name, "server") == 0;
    int sg = name != NULL && strcmp(name, "suggest") == 0;

    if (kr_rule_target(kind, subject, 0, srv ? value : NULL, sg ? value : NULL,
                       &at, entry, sizeof(entry), &why) != KAP_OK)
        return why != NULL ? "-" : "no reason";
    snprintf(out, sizeof(out), "%s.%s[%s] %s", at.section ? at.section : "",
             at.list ? at.list : "", at.name ? at.name : "", entry);
    return out;
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

    plan(36);
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

    /* ---- mcp.servers and cli.tools ------------------------------------- */
    is_str(target(KAP_REQ_MCP_CALL, "create_issue", "server", "github"),
           "mcp.servers[github] create_issue", "an mcp call: its tool in its server's allow");
    is_str(target(KAP_REQ_CLI, "gh", "suggest", "pr view 12 --repo=o/r"),
           "cli.tools[gh] pr view 12 --repo=o/r", "a cli call: its canonical rule in its tool's allow");
    is_str(target(KAP_REQ_HTTP, "a.example", NULL, NULL), ".[] a.example",
           "a network question: network.allow");
    ok(strcmp(target(KAP_REQ_MCP_CALL, "create_issue", NULL, NULL), "-") == 0
       && strcmp(target(KAP_REQ_MCP_CALL, "create_*", "server", "github"), "-") == 0
       && strcmp(target(KAP_REQ_MCP_CALL, "a\", \"*", "server", "github"), "-") == 0
       && strcmp(target(KAP_REQ_MCP_CALL, "tool", "server", "gh\"; x"), "-") == 0
       && strcmp(target(KAP_REQ_CLI, "gh", NULL, NULL), "-") == 0
       && strcmp(target(KAP_REQ_CLI, "gh", "suggest", "**"), "-") == 0
       && strcmp(target(KAP_REQ_CLI, "gh", "suggest", "pr view *"), "-") == 0
       && strcmp(target(KAP_REQ_CLI, "gh", "suggest", "pr view \"]; x"), "-") == 0
       && strcmp(target(KAP_REQ_CLI, "gh", "suggest", "pr view a\\b"), "-") == 0
       && strcmp(target(KAP_REQ_CLI, "gh", "suggest", "pr\nview"), "-") == 0
       && strcmp(target(KAP_REQ_CLI, "gh", "suggest", "pr view \xc3\xa9"), "-") == 0
       && strcmp(target(KAP_REQ_CLI, "g h", "suggest", "pr view"), "-") == 0,
       "no server, a pattern, quotes, backslashes, controls, wildcards: refused with a reason");

    {
        const char *mcp =
            "# servers\n"
            "mcp: {\n"
            "    servers = (\n"
            "        { name = \"linear\"; allow = [\"*\"]; },  # all\n"
            "        { url = \"https://x/\"; name = \"github\";\n"
            "          allow = [\"get_*\",\n"
            "                   \"list_*\"];   // reads\n"
            "          ask = [\"create_*\"]; headers = { A = \"b\"; }; }\n"
            "    );\n"
            "};\n";
        is_int(ins_at(mcp, "mcp", "servers", "github", "create_issue"), KAP_OK,
               "mcp: added to the named server's allow");
        is_str(got,
            "# servers\n"
            "mcp: {\n"
            "    servers = (\n"
            "        { name = \"linear\"; allow = [\"*\"]; },  # all\n"
            "        { url = \"https://x/\"; name = \"github\";\n"
            "          allow = [\"get_*\",\n"
            "                   \"list_*\", \"create_issue\"];   // reads\n"
            "          ask = [\"create_*\"]; headers = { A = \"b\"; }; }\n"
            "    );\n"
            "};\n", "after its last element, the other server and comments untouched");
        is_int(got_line, 7, "on that element's line");
        ok(ins_at(mcp, "mcp", "servers", "github", "list_*") == KAP_DECLINED
           && got_line == 7, "an entry there already is not added twice");
        ok(ins_at(mcp, "mcp", "servers", "gitlab", "x") == KAP_ERROR,
           "no server of that name: refused (none is created)");
        ok(ins_at("mcp: { servers = ( { name = \"a\"; url = \"u\"; } ); };",
                  "mcp", "servers", "a", "x") == KAP_ERROR,
           "a server without an allow list: refused");
        ok(ins_at("network: { allow = []; };", "mcp", "servers", "a", "x") == KAP_ERROR
           && ins_at("mcp: { servers = { name = \"a\"; }; };", "mcp", "servers", "a", "x") == KAP_ERROR
           && ins_at("mcp: { servers = ( { name = \"a\"; allow = \"x\"; } ); };", "mcp", "servers", "a", "y") == KAP_ERROR
           && ins_at("mcp: { servers = ( { name = \"a\"; allow = [1]; } ); };", "mcp", "servers", "a", "y") == KAP_ERROR
           && ins_at("mcp: { servers = ( { name = \"a\"; allow = [\"x\"]; } ); ", "mcp", "servers", "a", "y") == KAP_ERROR
           && ins_at("@include \"x\"\nmcp: { servers = ( { name = \"a\"; allow = [\"x\"]; } ); };", "mcp", "servers", "a", "y") == KAP_ERROR,
           "no mcp group, not a list of groups, allow not strings, not libconfig, @include: refused with a reason");
        ok(ins_at("mcp: { servers = ( { name = \"b\"; allow = [\"x\"]; },\n"
                  "  { name = \"a\"; n = \"a\" \"b\"; l = ( 1, { x = [2]; } );\n"
                  "    allow = [ ]; } ); };", "mcp", "servers", "a", "t") == KAP_OK
           && strstr(got, "allow = [\"t\" ]; } ); };") != NULL && got_line == 3,
           "past nested values and glued strings; into an empty list");
    }
    {
        const char *cli =
            "cli: {\n"
            "    listen = \"127.0.0.1:3130\";\n"
            "    tools = (\n"
            "        { name = \"git\"; allow = [\"status **\"]; },\n"
            "        { name = \"gh\"; cwd = \"workspace\";\n"
            "          allow = [\"pr view *\"];   # reads\n"
            "          ask = [\"pr merge **\"]; }\n"
            "    );\n"
            "};\n";
        is_int(ins_at(cli, "cli", "tools", "gh", "pr merge 12 --squash"), KAP_OK,
               "cli: added to the named tool's allow");
        is_str(got,
            "cli: {\n"
            "    listen = \"127.0.0.1:3130\";\n"
            "    tools = (\n"
            "        { name = \"git\"; allow = [\"status **\"]; },\n"
            "        { name = \"gh\"; cwd = \"workspace\";\n"
            "          allow = [\"pr view *\", \"pr merge 12 --squash\"];   # reads\n"
            "          ask = [\"pr merge **\"]; }\n"
            "    );\n"
            "};\n", "after its last element, comments kept");
        is_int(got_line, 6, "on that element's line");
    }
    {
        /* the file: replaced atomically, mode kept, the rule at file:line */
        char path[] = "/tmp/kap-rule-XXXXXX", where[4200], why[4400];
        const char *text = "cli: { tools = ( { name = \"gh\"; allow = [\"a\"]; } ); };\n";
        struct kr_rule_at at = { "cli", "tools", "gh" };
        struct stat st;
        FILE *f;
        int fd = mkstemp(path), rc;

        if (fd >= 0) {
            (void) !write(fd, text, strlen(text));
            close(fd);
        }
        chmod(path, 0640);
        where[0] = why[0] = '\0';
        rc = kr_rule_write(path, &at, "pr view 1", where, sizeof(where), why,
                           sizeof(why));
        is_int(rc, KAP_OK, "kr_rule_write into cli.tools: KAP_OK");
        got[0] = '\0';
        if ((f = fopen(path, "r")) != NULL) {
            got[fread(got, 1, sizeof(got) - 1, f)] = '\0';
            fclose(f);
        }
        is_str(got, "cli: { tools = ( { name = \"gh\"; allow = [\"a\", \"pr view 1\"]; } ); };\n",
               "the file holds the rule");
        ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640
           && strncmp(where, path, strlen(path)) == 0
           && strcmp(where + strlen(path), ":1") == 0, "mode kept; where is path:line");
        at.name = "aws";
        rc = kr_rule_write(path, &at, "s3 ls", where, sizeof(where), why,
                           sizeof(why));
        ok(rc == KAP_ERROR && strstr(why, "no entry of that name") != NULL,
           "a tool the file does not have: refused, saying why");
        unlink(path);
    }
    return done_testing();
}
