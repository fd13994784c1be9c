/*
 * test_mcp_tools.c -- tool patterns of the mcp module
 * (modules/mcp/kap_mcp_tools.c): exact, PREFIX* and * patterns,
 * case-sensitive, deny wins, a name no allow pattern covers is denied,
 * every refused pattern, and the configuration checks (an empty or
 * missing allow is an error that suggests ["*"], at its line).
 */
#include "config.h"

#include <string.h>

#include "kap_mcp.h"
#include "tap.h"

static struct kap_pool *pool;

static struct kap_mcp_tools *
policy(const char *const *allow, const char *const *deny)
{
    struct kap_mcp_tools *t = kap_mcp_tools_create(pool);
    struct kap_err err;

    memset(&err, 0, sizeof(err));
    for (; allow && *allow; allow++)
        if (kap_mcp_tools_add(t, 0, *allow, NULL, 0, &err) != KAP_OK)
            diag("allow %s: %s", *allow, err.msg);
    for (; deny && *deny; deny++)
        if (kap_mcp_tools_add(t, 1, *deny, NULL, 0, &err) != KAP_OK)
            diag("deny %s: %s", *deny, err.msg);
    return t;
}

static const char *
decide(const struct kap_mcp_tools *t, const char *name)
{
    static char buf[300];
    struct kap_mcp_verdict v;
    char why[200];

    kap_mcp_tools_match(t, name, &v);
    snprintf(buf, sizeof(buf), "%s: %s", v.allow ? "allow" : "deny",
             kap_mcp_verdict_describe(&v, why, sizeof(why)));
    return buf;
}

static void
test_match(void)
{
    static const char *const allow[] = { "get_*", "list_issues", "search*",
                                         NULL };
    static const char *const deny[] = { "get_secret*", "list_issues", NULL };
    static const char *const all[] = { "*", NULL };
    static const char *const nodel[] = { "delete_*", NULL };
    struct kap_mcp_tools *t = policy(allow, deny);
    struct kap_mcp_tools *star = policy(all, nodel);

    is_str(decide(t, "get_issue"), "allow: allow rule \"get_*\"",
           "prefix pattern allows");
    is_str(decide(t, "get_"), "allow: allow rule \"get_*\"",
           "prefix pattern covers the bare prefix");
    is_str(decide(t, "get"), "deny: no allow rule matches",
           "shorter than the prefix: not covered");
    is_str(decide(t, "Get_issue"), "deny: no allow rule matches",
           "case-sensitive");
    is_str(decide(t, "get_secret_key"), "deny: deny rule \"get_secret*\"",
           "deny wins over a covering allow");
    is_str(decide(t, "list_issues"), "deny: deny rule \"list_issues\"",
           "the same pattern in both lists: deny wins");
    is_str(decide(t, "list_issues2"), "deny: no allow rule matches",
           "an exact pattern is not a prefix");
    is_str(decide(t, "searchAll"), "allow: allow rule \"search*\"",
           "prefix without underscore");
    is_str(decide(t, ""), "deny: no allow rule matches", "empty name");
    is_str(decide(t, NULL), "deny: no allow rule matches", "no name");
    is_str(decide(star, ""), "allow: allow rule \"*\"", "* covers the empty name");
    is_str(decide(star, "delete_repo"), "deny: deny rule \"delete_*\"",
           "* with a deny");
    is_str(decide(star, "Delete_repo"), "allow: allow rule \"*\"",
           "deny patterns are case-sensitive too");
    is_str(decide(star, "caf\xc3\xa9"), "allow: allow rule \"*\"", "UTF-8 name");
    is_str(decide(policy(NULL, NULL), "x"), "deny: no allow rule matches",
           "an empty policy denies");
}

static void
test_bad_patterns(void)
{
    static const struct { const char *p, *why; } bad[] = {
        { "", "is empty" },
        { "get_*_x", "'*' that is not its last character" },
        { "*get", "'*' that is not its last character" },
        { "**", "'*' that is not its last character" },
        { "get issue", "space or a control character" },
        { "get\tissue", "space or a control character" },
        { "get\x7f", "space or a control character" },
        { "get\xc3", "not valid UTF-8" },
        { "\xc0\xaf", "not valid UTF-8" },
        { "\xed\xa0\x80", "not valid UTF-8" },
    };
    struct kap_mcp_tools *t = kap_mcp_tools_create(pool);
    struct kap_err err;
    char longp[KAP_MCP_PATTERN_MAX + 2];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        ok(kap_mcp_tools_add(t, 0, bad[i].p, NULL, 0, &err) == KAP_ERROR
           && strstr(err.msg, bad[i].why) != NULL,
           "pattern %zu refused: %s", i, err.msg);
    }
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    memset(&err, 0, sizeof(err));
    ok(kap_mcp_tools_add(t, 1, longp, NULL, 0, &err) == KAP_ERROR
       && strstr(err.msg, "too long"), "over-long pattern refused");
    longp[KAP_MCP_PATTERN_MAX] = '\0';
    memset(&err, 0, sizeof(err));
    ok(kap_mcp_tools_add(t, 1, longp, NULL, 0, &err) == KAP_OK,
       "a pattern of the maximum length is fine");
    is_int(t->nallow, 0, "no refused pattern was kept");
}

/* Parse text with libconfig and apply the allow/deny of its "server". */
static int
conf(const char *text, struct kap_err *err)
{
    config_t cfg;
    config_setting_t *s;
    struct kap_mcp_tools *t = kap_mcp_tools_create(pool);
    int rc;

    memset(err, 0, sizeof(*err));
    config_init(&cfg);
    if (config_read_string(&cfg, text) != CONFIG_TRUE) {
        diag("libconfig: %s", config_error_text(&cfg));
        config_destroy(&cfg);
        return -2;
    }
    s = config_lookup(&cfg, "server");
    rc = kap_mcp_tools_conf(t, config_setting_lookup(s, "allow"),
                            config_setting_lookup(s, "deny"), "gh", err);
    config_destroy(&cfg);
    return rc;
}

static void
test_conf(void)
{
    struct kap_err err;

    is_int(conf("server = { allow = [ \"get_*\", \"list_*\" ];\n"
                "  deny = ( \"get_secret\" ); };", &err), KAP_OK,
           "arrays and lists of strings");
    is_int(conf("server = { deny = [ \"x\" ]; };", &err), KAP_ERROR,
           "missing allow refused");
    ok(strstr(err.msg, "allow = [\"*\"]") && strstr(err.msg, "missing")
       && strstr(err.msg, "\"gh\""), "... suggesting [\"*\"]: %s", err.msg);
    is_int(conf("server = {\n  allow = [ ];\n};", &err), KAP_ERROR,
           "empty allow refused");
    ok(strstr(err.msg, "allow = [\"*\"]") && strstr(err.msg, "empty")
       && err.line == 2, "... at its line, suggesting [\"*\"]: %s (line %d)",
       err.msg, err.line);
    is_int(conf("server = { allow = \"*\"; };", &err), KAP_ERROR,
           "a string instead of a list refused");
    ok(strstr(err.msg, "must be a list"), "... saying so: %s", err.msg);
    is_int(conf("server = { allow = [ 1 ]; };", &err), KAP_ERROR,
           "a number in the list refused");
    ok(strstr(err.msg, "allow[0] is not a string"), "... saying so: %s",
       err.msg);
    is_int(conf("server = {\n allow = [\"*\"];\n deny = [\n \"a\",\n \"b*c\" ];\n};",
                &err), KAP_ERROR, "a bad deny pattern refused");
    ok(strstr(err.msg, "deny: tool pattern \"b*c\"") && err.line == 5,
       "... naming it at its line: %s (line %d)", err.msg, err.line);
}

/* an allow pattern that names a tool exactly ("allow always" writes one)
   is what an ask pattern does not override (kap_mcp_policy) */
static void
test_named(void)
{
    static const char *const allow[] = { "*", "create_*", "create_issue",
                                         NULL };
    struct kap_mcp_tools *t = policy(allow, NULL);

    ok(kap_mcp_tools_named(t, "create_issue"), "an exact allow names the tool");
    ok(!kap_mcp_tools_named(t, "create_pr") && !kap_mcp_tools_named(t, "create_")
       && !kap_mcp_tools_named(t, "create_issue2") && !kap_mcp_tools_named(t, "")
       && !kap_mcp_tools_named(t, NULL) && !kap_mcp_tools_named(NULL, "x"),
       "a pattern ending in '*' names none");
}

int
main(void)
{

    pool = kap_pool_create();
    test_match();
    test_bad_patterns();
    test_conf();
    test_named();
    kap_pool_destroy(pool);
    return done_testing();
}
