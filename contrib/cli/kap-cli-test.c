/*
 * kap-cli-test.c -- kap-cli-test, behind `kap cli test [-c FILE] TOOL --
 * ARGS...`: the verdict kapd's cli module would give a call, the rule
 * that decided it and the canonical argv it would run, from the policy
 * file and the tool's profile alone: nothing runs, the tool need not be
 * installed, no kapd is asked.  Exit 0 when the call would run, 126 when
 * it would be denied, 2 on a usage or configuration error.  The words
 * are the module's (kap_cli_say.h, kap_cli_rules.h).
 *
 * `kap-cli-test -c FILE --list` prints the names of the cli group's
 * tools, one a line (kap run makes a shim for each).
 */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_pool.h>

#include "kap_cli_rules.h"
#include "kap_cli_say.h"

#ifndef KAP_CLI_PROFILE_DIR
#define KAP_CLI_PROFILE_DIR "/usr/local/share/kap/cli"
#endif

#define KAP_CLI_TEST_DENIED 126
#define KAP_CLI_TEST_ERROR  2
#define KAP_CLI_TEST_ASK    3

static struct kap_pool *pool;
static config_t         cfg;
static int              cfg_live;

/* Free everything and return rc (for main's return and exit()). */
static int
done(int rc)
{
    if (cfg_live)
        config_destroy(&cfg);
    cfg_live = 0;
    if (pool != NULL)
        kap_pool_destroy(pool);
    pool = NULL;
    return rc;
}

static void
die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "kap: cli test: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(done(KAP_CLI_TEST_ERROR));
}

/* path relative to the policy file's directory unless absolute */
static const char *
rel(const char *dir, const char *path)
{
    return path[0] == '/' ? path : kap_psprintf(pool, "%s/%s", dir, path);
}

static char *
slurp(const char *path, size_t *len)
{
    FILE   *f = fopen(path, "re");
    char   *buf = NULL;
    size_t  cap = 0, n = 0, got;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = (cap + 4096) * 2);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static struct kap_cli_rule **
rules(const config_setting_t *tool, const char *key,
      const struct kap_cli_profile *p, const char *file, size_t *n)
{
    const config_setting_t *l = config_setting_get_member(tool, key), *e;
    struct kap_cli_rule   **out;
    char                    msg[256], where[64];
    int                     i, len = l != NULL ? config_setting_length(l) : 0;

    out = kap_palloc(pool, ((size_t)len + 1) * sizeof(*out));
    if (out == NULL)
        die("%s%s", "out of memory", "");
    for (i = 0; i < len; i++) {
        e = config_setting_get_elem(l, (unsigned)i);
        if (config_setting_get_string(e) == NULL) {
            snprintf(where, sizeof(where), "%s:%d", file,
                     config_setting_source_line(e));
            die("%s: %s rules are strings", where, key);
        }
        msg[0] = '\0';
        out[i] = kap_cli_rule_parse(pool, p, config_setting_get_string(e),
                                    file, config_setting_source_line(e),
                                    msg, sizeof(msg));
        if (out[i] == NULL) {
            snprintf(where, sizeof(where), "%s:%d", file,
                     config_setting_source_line(e));
            fprintf(stderr, "kap: cli test: %s: %s rule \"%s\": %s\n", where,
                    key, config_setting_get_string(e), msg);
            exit(done(KAP_CLI_TEST_ERROR));
        }
    }
    *n = (size_t)len;
    return out;
}

int
main(int argc, char **argv)
{
    const char             *file = NULL, *name, *dir, *mode = NULL,
                           *prof = NULL, *pdir;
    const config_setting_t *tools, *tool = NULL;
    struct kap_cli_profile *p;
    struct kap_cli_rule   **allow, **deny, **ask;
    struct kap_cli_call     call;
    struct kap_cli_verdict  v;
    struct kap_cli_arg     *args;
    const char             *why = NULL, *s, **raw;
    size_t                  nallow, ndeny, nask, len, nargs, i;
    char                   *text, msg[256], *slash;
    int                     ai = 1, k;

    if (ai + 1 < argc && strcmp(argv[ai], "-c") == 0) {
        file = argv[ai + 1];
        ai += 2;
    }
    if (file == NULL || ai >= argc)
        die("%s%s", "usage: kap-cli-test -c FILE (TOOL [--] ARGS... | "
            "--list)", "");
    name = argv[ai++];
    if (ai < argc && strcmp(argv[ai], "--") == 0)
        ai++;
    pool = kap_pool_create();
    if (pool == NULL)
        die("%s%s", "out of memory", "");
    dir = kap_pstrdup(pool, file);
    slash = dir != NULL ? strrchr(dir, '/') : NULL;
    if (slash != NULL)
        *slash = '\0';
    else
        dir = ".";
    config_init(&cfg);
    cfg_live = 1;
    config_set_include_dir(&cfg, dir);
    if (config_read_file(&cfg, file) != CONFIG_TRUE) {
        fprintf(stderr, "kap: cli test: %s:%d: %s\n",
                config_error_file(&cfg) != NULL ? config_error_file(&cfg)
                                                : file,
                config_error_line(&cfg), config_error_text(&cfg));
        return done(KAP_CLI_TEST_ERROR);
    }
    tools = config_lookup(&cfg, "cli.tools");
    if (strcmp(name, "--list") == 0) {
        for (k = 0; tools != NULL && k < config_setting_length(tools); k++) {
            const config_setting_t *g = config_setting_get_elem(tools,
                                                                (unsigned)k);
            if (config_setting_lookup_string(g, "name", &s) == CONFIG_TRUE
                && s[0] != '\0' && s[0] != '.' && strlen(s) <= 64
                && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                          "TUVWXYZ0123456789-_.") == strlen(s))
                printf("%s\n", s);
        }
        return done(0);
    }
    for (k = 0; tools != NULL && k < config_setting_length(tools); k++) {
        const config_setting_t *g = config_setting_get_elem(tools,
                                                            (unsigned)k);
        if (config_setting_lookup_string(g, "name", &s) == CONFIG_TRUE
            && strcmp(s, name) == 0)
            tool = g;
    }
    if (tool == NULL)
        die("no tool \"%s\" in the cli group of %s", name, file);
    printf("tool:    %s\n", name);
    if (config_setting_lookup_string(tool, "mode", &mode) == CONFIG_TRUE
        && strcmp(mode, "direct") == 0) {
        printf("mode:    direct (the tool runs in the capsule with its "
               "credentials: no rules apply)\nverdict: allow\n");
        return done(0);
    }
    pdir = getenv("KAP_CLI_PROFILE_DIR");
    if (config_setting_lookup_string(tool, "profile", &prof) == CONFIG_TRUE)
        prof = rel(dir, prof);
    else
        prof = kap_psprintf(pool, "%s/%s.prof", pdir != NULL && pdir[0] != '\0'
                            ? pdir : KAP_CLI_PROFILE_DIR, name);
    text = prof != NULL ? slurp(prof, &len) : NULL;
    if (text == NULL)
        die("no profile %s: a tool without a profile can only be mode = "
            "\"direct\" (%s)", prof != NULL ? prof : "?", strerror(errno));
    msg[0] = '\0';
    p = len > 0 ? kap_cli_profile_parse(pool, text, len, msg, sizeof(msg))
                : NULL;
    free(text);
    if (p == NULL)
        die("profile %s: %s", prof, len == 0 ? "empty" : msg);
    deny = rules(tool, "deny", p, file, &ndeny);
    ask = rules(tool, "ask", p, file, &nask);
    allow = rules(tool, "allow", p, file, &nallow);
    nargs = (size_t)(argc - ai);
    args = kap_palloc(pool, (nargs + 1) * sizeof(*args));
    raw = kap_palloc(pool, (nargs + 2) * sizeof(*raw));
    if (args == NULL || raw == NULL)
        die("%s%s", "out of memory", "");
    raw[0] = name;
    for (i = 0; i < nargs; i++) {
        args[i].data = argv[ai + (int)i];
        args[i].len = strlen(argv[ai + (int)i]);
        raw[i + 1] = argv[ai + (int)i];
    }
    raw[nargs + 1] = NULL;
    memset(&v, 0, sizeof(v));
    if (kap_cli_canon(pool, p, args, nargs, &call, &why) != 0) {
        v.reason = why;
        call.argv = raw;
    } else {
        kap_cli_decide_ask(pool, p, &call, deny, ndeny, ask, nask, allow,
                           nallow, &v);
    }
    s = kap_cli_say_argv(pool, call.argv);
    printf("argv:    %s\n", s != NULL ? s : "?");
    if (v.allow) {
        printf("verdict: allow\nrule:    %s", v.rule != NULL ? v.rule->text
                                                           : "?");
        if (v.rule != NULL && v.rule->file != NULL)
            printf("  (%s:%d)", v.rule->file, v.rule->line);
        printf("\n");
        return done(0);
    }
    if (v.ask) {
        printf("verdict: ask\nrule:    %s", v.rule != NULL ? v.rule->text
                                                         : "?");
        if (v.rule != NULL && v.rule->file != NULL)
            printf("  (%s:%d)", v.rule->file, v.rule->line);
        printf("\n(a human decides: kap run --ask asks the host; with "
               "nobody to ask the call is denied)\n");
        return done(KAP_CLI_TEST_ASK);
    }
    printf("verdict: deny\nreason:  %s\n", v.reason != NULL ? v.reason : "?");
    if (v.rule != NULL && v.rule->file != NULL)
        printf("rule:    %s  (%s:%d)\n", v.rule->text, v.rule->file,
               v.rule->line);
    if (v.suggest != NULL)
        printf("allow:   \"%s\"  (a rule that would allow it)\n", v.suggest);
    s = kap_cli_say_denied(pool, s != NULL ? s : "?", v.reason, v.suggest);
    fputs(s != NULL ? s : "kap: denied\n", stdout);
    return done(KAP_CLI_TEST_DENIED);
}
