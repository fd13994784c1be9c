/*
 * kap_cli_say.h -- the words of a cli verdict, shared by the module (the
 * denial line a proxy-mode call ends with) and kap-cli-test (`kap cli
 * test`), so that both say the same thing.  Pure functions; everything
 * in the pool the caller passes.
 */
#ifndef KAP_CLI_SAY_H
#define KAP_CLI_SAY_H

struct kap_pool;

/*
 * argv (NULL-terminated) joined with blanks; a word that is empty or
 * holds a blank, quote, backslash, '$' or '`' is single-quoted.  Not
 * redacted.  NULL on out of memory.
 */
char *kap_cli_say_argv(struct kap_pool *pool, const char *const *argv);

/*
 * The one denial line, with its newline:
 *   kap: CMD: denied: REASON[ (a rule that would allow it: "SUGGEST")]
 * suggest may be NULL or "".  NULL on out of memory.
 */
char *kap_cli_say_denied(struct kap_pool *pool, const char *cmd,
                         const char *reason, const char *suggest);

#endif /* KAP_CLI_SAY_H */
