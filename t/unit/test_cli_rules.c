/*
 * test_cli_rules.c -- the cli module's deciding part: profile loading,
 * the cobra canonicaliser, the rule language, and the bypass classes of
 * cli-policy.md section 1.10 for gh, which must all be denied.  The gh
 * profile is the one the build generated from the installed gh; without
 * gh those tests are skipped with a reason.  Where gh is installed, the
 * canonical argv kapd would execute is handed to the real gh, which must
 * parse it (it then stops for want of a login, exit 4, not for a usage
 * error, exit 1).
 */
#include "config.h"

#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kapd/kap_pool.h>

#include "cli_verdict.h"

extern char **environ;

static void
test_mini_profile(void)
{
    static const char txt[] =
        "tool t\nfamily cobra\ncmd a/b\nflag a/b --val v -v\n"
        "flag a/b --on b -o\npflag a --repo v -R\nalias a bb b\n";
    char err[256];
    struct kap_cli_profile *p = kap_cli_profile_parse(pool, txt, strlen(txt),
                                                      err, sizeof(err));
    ok(p != NULL, "a small profile loads");
    ok(kap_cli_profile_parse(pool, "tool t\nbogus x\n", 15, err, sizeof(err))
       == NULL && strstr(err, "line 2") != NULL,
       "a bad directive is reported with its line (%s)", err);
    ok(kap_cli_profile_parse(pool, "tool t\nfamily bogus\n", 20, err,
                             sizeof(err)) == NULL,
       "an unknown family is refused");
    ok(kap_cli_profile_parse(pool, "cmd a\n", 6, err, sizeof(err)) == NULL,
       "a profile without a tool line is refused");
    ok(kap_cli_profile_parse(pool, "tool t\ncmd a\0b\n", 14, err, sizeof(err))
       == NULL, "a NUL byte in a profile is refused");
    {
        static const char dup[] = "tool t\nrestype pods core pod po\n"
                                   "restype secrets core secret pods\n";
        static const char fine[] = "tool t\nrestype pods core pod po\n"
                                   "restype secrets core secret\n"
                                   "rescat all pods secrets\n";

        ok(kap_cli_profile_parse(pool, dup, strlen(dup), err, sizeof(err))
           == NULL && strstr(err, "pods already names pods") != NULL
           && strstr(err, "line 3") != NULL,
           "a name two resource types answer to is refused (%s)", err);
        ok(kap_cli_profile_parse(pool, fine, strlen(fine), err, sizeof(err))
           != NULL, "types with their own names and a category load (%s)",
           err);
    }
}

static void
test_wire(void)
{
    struct kap_cli_arg a[3];
    const char        *why = "";
    static const char  nul[] = "auth\0x", bad[] = "\xc3\x28", over[] = "\xc0\xaf";
    struct kap_cli_arg *many = calloc(KAP_CLI_MAX_ARGS + 1, sizeof(*many));
    char               *big = malloc(KAP_CLI_MAX_ARG + 1);

    a[0].data = nul; a[0].len = 6;
    ok(kap_cli_canon(pool, prof, a, 1, &last, &why) < 0
       && strstr(why, "NUL") != NULL, "NUL inside an argument: %s", why);
    a[0].data = bad; a[0].len = 2;
    ok(kap_cli_canon(pool, prof, a, 1, &last, &why) < 0
       && strstr(why, "UTF-8") != NULL, "invalid UTF-8: %s", why);
    a[0].data = over; a[0].len = 2;
    ok(kap_cli_canon(pool, prof, a, 1, &last, &why) < 0, "overlong UTF-8");
    for (size_t i = 0; i <= KAP_CLI_MAX_ARGS; i++) {
        many[i].data = "x";
        many[i].len = 1;
    }
    ok(kap_cli_canon(pool, prof, many, KAP_CLI_MAX_ARGS + 1, &last, &why) < 0
       && strstr(why, "4096") != NULL, "4097 arguments: %s", why);
    memset(big, 'a', KAP_CLI_MAX_ARG + 1);
    a[0].data = big; a[0].len = KAP_CLI_MAX_ARG + 1;
    ok(kap_cli_canon(pool, prof, a, 1, &last, &why) < 0, "131072-byte argument");
    a[0].data = "\xe2\x82\xac"; a[0].len = 3;
    ok(kap_cli_canon(pool, prof, a, 1, &last, &why) < 0
       && strcmp(why, "unknown-command \xe2\x82\xac") == 0,
       "valid UTF-8 reaches the walk: %s", why);
    free(many);
    free(big);
}

static void
test_rules_parse(void)
{
    char err[256];

    ok(kap_cli_rule_parse(pool, prof, "pr lst", "f", 3, err, sizeof(err)) == NULL
       && strstr(err, "unknown command word lst") != NULL,
       "unknown command word in a rule: %s", err);
    ok(kap_cli_rule_parse(pool, prof, "pr list --nope", "f", 3, err, sizeof(err))
       == NULL && strstr(err, "unknown flag --nope") != NULL,
       "unknown flag in a rule: %s", err);
    ok(kap_cli_rule_parse(pool, prof, "** x ** y **", "f", 3, err, sizeof(err))
       == NULL, "three ** refused");
    ok(kap_cli_rule_parse(pool, prof, "pr list 'a b", "f", 3, err, sizeof(err))
       == NULL, "unterminated quote refused");
    {
        struct kap_cli_rule *r = kap_cli_rule_parse(pool, prof, "issue ls **",
                                                    "f", 3, err, sizeof(err));
        ok(r != NULL && r->nword == 3 && strcmp(r->word[1].text, "list") == 0,
           "issue ls is stored as issue list");
        r = kap_cli_rule_parse(pool, prof, "api -X=delete **", "f", 3, err,
                               sizeof(err));
        ok(r != NULL && r->ncond == 1 && strcmp(r->cond[0].flag->name, "method") == 0
           && strcmp(r->cond[0].text, "DELETE") == 0,
           "-X=delete in a rule is --method=DELETE");
    }
}

static void
test_canonical(void)
{
    is_str(canon(A("-R", "o/r", "pr", "view", "1", "-c")),
           "gh pr view --repo=o/r --comments 1", "global -R moves after the path");
    is_str(canon(A("pr", "-R", "o/r", "view", "1")),
           "gh pr view --repo=o/r 1", "group flag between the words");
    is_str(canon(A("api", "-XDELETE", "repos/o/r")),
           "gh api --method=DELETE repos/o/r", "-XDELETE");
    is_str(canon(A("api", "-iXdelete", "repos/o/r")),
           "gh api --include --method=DELETE repos/o/r", "cluster -iXdelete, upper-cased");
    is_str(canon(A("api", "-X=DELETE", "repos/o/r")),
           "gh api --method=DELETE repos/o/r", "-X=DELETE");
    is_str(canon(A("api", "repos/o/r")),
           "gh api --method=GET repos/o/r", "derived --method=GET");
    is_str(canon(A("api", "-f", "a=b", "repos/o/r")),
           "gh api --raw-field=a=b --method=POST repos/o/r",
           "a field implies POST");
    is_str(canon(A("pr", "ls", "--draft=false", "-L", "5")),
           "gh pr list --draft=false --limit=5", "alias ls, bool false kept, -L value");
    is_str(canon(A("co", "12")), "gh pr checkout 12", "default alias co");
    is_str(canon(A("repo", "clone", "o/r", "--", "--depth=1")),
           "gh repo clone o/r -- --depth=1", "-- kept where it was");
    is_str(canon(A("pr", "list", "--state", "--draft")),
           "gh pr list --state=--draft", "a value flag takes the next word even with a dash");
    is_str(canon(A("pr", "list", "--draft", "true")),
           "gh pr list --draft true", "a bool never takes a separate word");
}

static void
test_bypass(void)
{
    /* 1. flags before and between command words */
    is_str(verdict(A("--hostname", "github.com", "auth", "token"), ALL, NONE),
           "unknown-global-flag --hostname", "--hostname before the command");
    is_str(verdict(A("auth", "-h", "github.com", "token"), ALL, NONE),
           "unknown-global-flag -h", "-h between auth and token");
    is_str(verdict(A("auth", "token", "--hostname", "github.com"), ALL, NONE),
           "sensitive: auth token", "auth token with --hostname after it");
    /* 2. value-arity confusion */
    is_str(verdict(A("--user", "pr", "auth", "token"), A("pr **"), NONE),
           "unknown-global-flag --user", "unknown flag eats a word in gh");
    is_str(verdict(A("pr", "--draft", "list"), A("**"), NONE),
           "unknown-global-flag --draft", "leaf bool before the leaf");
    /* 3. = / attached / clustered forms */
    is_str(verdict(A("api", "-XDELETE", "repos/o/r"), A("api --method=GET **"), NONE),
           "no-allow-rule", "-XDELETE is not GET");
    is_str(verdict(A("api", "-iXdelete", "repos/o/r"), A("api --method=GET **"), NONE),
           "no-allow-rule", "-iXdelete is not GET");
    is_str(verdict(A("api", "--method=get", "repos/o/r"), A("api --method=GET **"), NONE),
           "allow", "--method=get is GET");
    is_str(verdict(A("api", "-f", "a=b", "repos/o/r"), A("api --method=GET **"), NONE),
           "no-allow-rule", "-f implies POST");
    is_str(verdict(A("api", "-X", "GET", "-X", "DELETE", "repos/o/r"),
                   A("api --method=GET **"), NONE),
           "no-allow-rule", "two -X: every value must be GET");
    is_str(verdict(A("api", "-X", "GET", "-X", "DELETE", "repos/o/r"), ALL,
                   A("api --method=DELETE")),
           "deny-rule: api --method=DELETE", "deny fires on any value");
    /* 4. -- */
    is_str(verdict(A("--", "auth", "token"), ALL, NONE), "no-command", "-- first");
    is_str(verdict(A("pr", "--", "list"), ALL, NONE), "no-command", "-- inside the path");
    /* 5. no abbreviation, no case folding */
    is_str(verdict(A("auth", "tok"), ALL, NONE), "unknown-command tok", "auth tok");
    is_str(verdict(A("AUTH", "token"), ALL, NONE), "unknown-command AUTH", "AUTH token");
    is_str(verdict(A("pr", "list", "--stat", "open"), ALL, NONE),
           "unknown-flag --stat", "no flag abbreviation");
    /* 6. aliases, completion, help */
    is_str(verdict(A("tk"), ALL, NONE), "unknown-command tk", "a user alias");
    is_str(verdict(A("__complete", "auth", "to"), ALL, NONE),
           "unknown-command __complete", "__complete");
    is_str(verdict(A("auth", "git-credential", "get"), ALL, NONE),
           "unknown-command git-credential", "hidden auth git-credential");
    is_str(verdict(A("GH_HOST=x", "pr", "list"), ALL, NONE),
           "unknown-command GH_HOST=x", "an environment word");
    /* 7. extensions */
    is_str(verdict(A("extension", "exec", "x"), ALL, NONE),
           "sensitive: extension", "extension exec");
    is_str(verdict(A("ext", "install", "o/gh-x"), ALL, NONE),
           "sensitive: extension", "ext install (alias)");
    is_str(verdict(A("alias", "set", "tk", "auth token"), ALL, NONE),
           "sensitive: alias set", "alias set");
    /* 8. parameters from files */
    is_str(verdict(A("api", "-F", "b=@/proc/self/environ", "-X", "POST", "repos/o/r/issues"),
                   A("api --method=POST **"), NONE),
           "guarded: api --field=*=@*", "-F k=@file");
    is_str(verdict(A("api", "--input", "/etc/passwd", "-X", "POST", "repos/o/r/issues"),
                   A("api --method=POST **"), NONE),
           "guarded: api --input!=-", "--input FILE");
    is_str(verdict(A("issue", "create", "--body-file", "/proc/self/environ"), ALL, NONE),
           "guarded: --body-file (path)", "absolute --body-file");
    is_str(verdict(A("issue", "create", "-F", "../x"), ALL, NONE),
           "guarded: --body-file (path)", "--body-file with ..");
    is_str(verdict(A("issue", "create", "-F", "notes.md", "-t", "x"), ALL, NONE),
           "allow", "relative --body-file is fine");
    is_str(verdict(A("issue", "create", "--body-file", "/w/notes.md"),
                   A("issue create --body-file=/w/*"), NONE),
           "allow", "a rule naming the path allows it");
    is_str(verdict(A("gist", "create", "/proc/self/environ"), ALL, NONE),
           "guarded: gist create *", "gist create FILE");
    /* 9. target changes */
    is_str(verdict(A("pr", "list", "-R", "evil.example/o/r"), ALL, NONE),
           "guarded: --repo=*/*/*", "-R with a host");
    is_str(verdict(A("api", "https://evil.example/x"), ALL, NONE),
           "guarded: api *://*", "api with a full URL");
    is_str(verdict(A("api", "--hostname", "evil.example", "user"), ALL, NONE),
           "guarded: --hostname", "api --hostname");
    /* 10. credential printers */
    is_str(verdict(A("auth", "status", "-t"), ALL, NONE),
           "sensitive: auth status --show-token", "auth status -t");
    is_str(verdict(A("auth", "status", "--show-token=1"), ALL, NONE),
           "sensitive: auth status --show-token", "auth status --show-token=1");
    is_str(verdict(A("auth", "status"), ALL, NONE), "allow", "plain auth status");
    is_str(verdict(A("pr", "list", "--jq", "$ENV.GH_TOKEN"), ALL, NONE),
           "guarded: --jq", "--jq reads the environment");
    is_str(verdict(A("auth", "token"), A("auth *"), NONE),
           "sensitive: auth token", "a * does not reach auth token");
    is_str(verdict(A("auth", "token"), A("auth token"), NONE),
           "allow", "a rule spelling auth token allows it");
    /* 11. escape hatches */
    is_str(verdict(A("api", "-X", "DELETE", "repos/o/r"), ALL, NONE),
           "sensitive: api --method!=GET", "api DELETE under **");
    is_str(verdict(A("api", "graphql", "-f", "query=x"), ALL, NONE),
           "sensitive: api --method!=GET", "api graphql (POST)");
    is_str(verdict(A("api", "graphql", "-X", "GET"), ALL, NONE),
           "sensitive: api graphql", "api graphql as GET");
    is_str(verdict(A("api", "-X", "DELETE", "repos/o/r"),
                   A("api --method=DELETE repos/o/*"), NONE),
           "allow", "a write endpoint named by a rule");
    is_str(verdict(A("repo", "delete", "o/r", "--yes"), ALL, A("repo delete")),
           "deny-rule: repo delete", "deny matches as a prefix");
    /* 12. canonicalisation that must not over-deny */
    is_str(verdict(A("-R", "o/r", "pr", "view", "1"), A("pr view *"), NONE),
           "allow", "-R before the command");
    is_str(verdict(A("pr", "view", "1", "-R", "o/r"), A("pr view * --repo=o/*"), NONE),
           "allow", "-R after, named by the rule");
    is_str(verdict(A("pr", "view", "1"), A("pr view * --repo=o/*"), NONE),
           "no-allow-rule", "a rule naming --repo=... needs it present");
    is_str(verdict(A("issue", "list", "--state=open", "-L", "5"), A("issue ls **"), NONE),
           "allow", "issue ls rule, issue list call");
    is_str(verdict(A("pr", "view", "1", "2"), A("pr view *"), NONE),
           "no-allow-rule", "allow is exact: one word too many");
    is_str(verdict(A("pr", "list", "--web"), A("pr list ** !--web"), NONE),
           "no-allow-rule", "!--web");
    is_str(verdict(A("pr", "list", "--web=false"), A("pr list ** !--web"), NONE),
           "allow", "--web=false is absent for !--web");
    is_str(verdict(A("api", "-H", "Accept: x", "-H", "Authorization: y", "user"),
                   A("api --method=GET ** --header=Accept:*"), NONE),
           "no-allow-rule", "every -H must be Accept");
    is_str(verdict(A("api", "-H", "Accept: x", "user"),
                   A("api --method=GET ** --header=Accept:*"), NONE),
           "allow", "an Accept header named by the rule");
    /* 13. the empty command */
    is_str(verdict(A(NULL), A("pr **"), NONE), "no-allow-rule", "empty argv, narrow rules");
    is_str(verdict(A(NULL), ALL, NONE), "allow", "empty argv under **");
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

/* Run the real gh with argv (canonical) in an empty config; its status. */
static int
run_gh(const char *const *argv, const char *dir)
{
    char       *env[8];
    pid_t       pid;
    int         st;
    posix_spawn_file_actions_t fa;

    env[0] = kap_psprintf(pool, "GH_CONFIG_DIR=%s", dir);
    env[1] = kap_psprintf(pool, "XDG_CONFIG_HOME=%s", dir);
    env[2] = kap_psprintf(pool, "HOME=%s", dir);
    env[3] = (char *) "GH_NO_UPDATE_NOTIFIER=1";
    env[4] = (char *) "GH_PROMPT_DISABLED=1";
    env[5] = (char *) "PATH=/usr/bin:/bin";
    env[6] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, "gh", &fa, NULL, (char *const *) argv, env) != 0)
        return -1;
    posix_spawn_file_actions_destroy(&fa);
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static void
test_real_gh(void)
{
    const char *const *calls[] = {
        A("-R", "o/r", "pr", "view", "1", "-c"),
        A("pr", "ls", "-dL", "5", "--state", "open"),
        A("issue", "list", "-R", "o/r", "--label", "bug", "--json", "number"),
        A("api", "-iXget", "repos/o/r"),
        A("release", "ls", "-R", "o/r"),
        A("run", "list", "-L3", "-w", "ci.yml"),
    };
    char dir[] = "/tmp/kap-cli-gh-XXXXXX";

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return;
    }
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        const char *c = canon(calls[i]);
        int         st = last.argv ? run_gh(last.argv, dir) : -2;

        ok(st == 4, "real gh parses '%s' (exit %d; 4 = needs a login)", c, st);
    }
    {   /* and rejects what the profile calls unknown */
        const char *const bad[] = { "gh", "pr", "list", "--stat", "open", NULL };
        ok(run_gh(bad, dir) == 1, "real gh rejects pr list --stat (usage error)");
    }
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ask rules sit between deny and allow (kap_cli_decide_ask) */
static const char *
ask_verdict(const char *const *argv, const char *const *allow,
            const char *const *ask, const char *const *deny)
{
    struct kap_cli_arg     a[64];
    struct kap_cli_verdict v;
    struct kap_cli_rule  **ar, **kr, **dr;
    size_t                 na, nk, nd, n = mkargs(a, argv);
    const char            *why;

    if (kap_cli_canon(pool, prof, a, n, &last, &why) < 0)
        return why;
    ar = rules(allow, &na);
    kr = rules(ask, &nk);
    dr = rules(deny, &nd);
    kap_cli_decide_ask(pool, prof, &last, dr, nd, kr, nk, ar, na, &v);
    if (v.ask && (v.allow || v.rule == NULL))
        return "BUG: ask without its rule";
    return v.ask ? kap_psprintf(pool, "ask %s", v.rule->text) : v.reason;
}

static void
test_ask(void)
{
    is_str(ask_verdict(A("pr", "list"), A("pr list"), A("pr merge *"), NONE),
           "allow", "ask: a call only allow covers is not asked");
    is_str(ask_verdict(A("pr", "merge", "7"), A("pr list"), A("pr merge *"), NONE),
           "ask pr merge *", "ask: what no allow rule covers is asked, not denied");
    is_str(ask_verdict(A("pr", "merge", "7"), ALL, A("pr merge *"), NONE),
           "ask pr merge *", "ask: an ask rule narrows what allow covers");
    is_str(ask_verdict(A("pr", "merge", "7"), ALL, A("pr merge *"), A("pr merge")),
           "deny-rule: pr merge", "ask: deny still wins");
    is_str(ask_verdict(A("pr", "close", "7"), A("pr list"), A("pr merge *"), NONE),
           "no-allow-rule", "ask: neither rule: denied");
    is_str(ask_verdict(A("auth", "token"), NONE, A("**"), NONE),
           "sensitive: auth token", "ask: a wildcard ask rule never reaches a sensitive command");
    is_str(ask_verdict(A("auth", "token"), NONE, A("auth token"), NONE),
           "ask auth token", "ask: a sensitive command named by an ask rule is asked");
    /* the rule "allow always" writes: the call spelled out */
    is_str(ask_verdict(A("pr", "merge", "7"), A("pr list", "pr merge 7"),
                       A("pr merge *"), NONE),
           "allow", "ask: an allow rule that spells the call exactly is not asked");
    is_str(ask_verdict(A("pr", "merge", "8"), A("pr list", "pr merge 7"),
                       A("pr merge *"), NONE),
           "ask pr merge *", "ask: ... another call still is");
    is_str(ask_verdict(A("pr", "merge", "7"), A("pr merge *"), A("pr merge *"), NONE),
           "ask pr merge *", "ask: an allow rule with a wildcard is narrowed");
    is_str(ask_verdict(A("pr", "merge", "7"), A("pr merge 7"), A("pr merge *"),
                       A("pr merge")),
           "deny-rule: pr merge", "ask: deny still wins over the exact rule");
}

int
main(void)
{
    size_t len = 0;
    char  *txt = tap_slurp(KAP_CLI_GH_PROFILE, &len);
    char   err[256];

    pool = kap_pool_create();
    test_mini_profile();
    if (txt == NULL || len == 0) {
        diag("skip: no gh profile at %s (gh is not installed at build time)",
             KAP_CLI_GH_PROFILE);
        free(txt);
        kap_pool_destroy(pool);
        return done_testing();
    }
    prof = kap_cli_profile_parse(pool, txt, len, err, sizeof(err));
    if (!ok(prof != NULL, "the generated gh profile loads (%s)", prof ? prof->version : err))
        return done_testing();
    test_wire();
    test_rules_parse();
    test_canonical();
    test_bypass();
    test_ask();
    if (access("/usr/bin/gh", X_OK) == 0)
        test_real_gh();
    else
        diag("skip: gh is not installed, the real parse is not checked");
    free(txt);
    kap_pool_destroy(pool);
    return done_testing();
}
