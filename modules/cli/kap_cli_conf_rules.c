/*
 * kap_cli_conf_rules.c -- a proxy-mode tool's profile and its allow/deny
 * rules, loaded at config time (kap_cli.h: kap_cli_conf_rules).  The
 * profile is a data file (kap_cli_rules.h, docs/design/cli-rules.md);
 * each rule is canonicalised with it, and a rule the profile cannot read
 * is an error at the rule's file:line.
 */
#include "kap_cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifndef KAP_CLI_PROFILE_DIR
#define KAP_CLI_PROFILE_DIR "/usr/local/share/kap/cli"
#endif

#define KAP_CLI_PROFILE_MAX (8 * 1024 * 1024)

/* The whole file at path, NUL-terminated, in pool; NULL with err set. */
static char *
kap_cli_slurp(struct kap_pool *pool, const char *path, size_t *len,
              struct kap_err *err)
{
    struct kap_buf b = { 0 };
    char           chunk[8192];
    size_t         n;
    char          *out = NULL;
    FILE          *f = fopen(path, "re");

    if (f == NULL) {
        kap_err_set(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > KAP_CLI_PROFILE_MAX
            || kap_buf_append(&b, chunk, n) != KAP_OK) {
            kap_err_set(err, "%s: too large or out of memory", path);
            goto done;
        }
    }
    if (ferror(f)) {
        kap_err_set(err, "cannot read %s", path);
        goto done;
    }
    out = kap_pstrndup(pool, b.data != NULL ? b.data : "", b.len);
    *len = b.len;
    if (out == NULL)
        kap_err_set(err, "out of memory");
done:
    fclose(f);
    kap_buf_free(&b);
    return out;
}

static int
kap_cli_conf_rulelist(struct kap_gen *gen, struct kap_cli_tool *t,
                      const config_setting_t *g, const char *key,
                      struct kap_cli_rule ***out, size_t *nout,
                      struct kap_err *err)
{
    struct kap_pool        *pool = kap_gen_pool(gen);
    const config_setting_t *l = config_setting_get_member(g, key), *e;
    const char            **txt = NULL;
    size_t                  n = 0, i;
    char                    msg[256];

    if (kap_conf_get_strlist(g, key, pool, &txt, &n, err) == KAP_ERROR)
        return KAP_ERROR;
    *out = kap_palloc(pool, (n + 1) * sizeof(**out));
    if (*out == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    for (i = 0; i < n; i++) {
        e = config_setting_get_elem(l, (unsigned)i);
        msg[0] = '\0';
        (*out)[i] = kap_cli_rule_parse(pool, t->profile, txt[i],
                                       config_setting_source_file(e),
                                       (int)config_setting_source_line(e),
                                       msg, sizeof(msg));
        if ((*out)[i] == NULL) {
            kap_err_at(err, e, "cli: tool \"%s\": %s rule \"%s\": %s",
                       t->name, key, txt[i], msg);
            return KAP_ERROR;
        }
    }
    *nout = n;
    return KAP_OK;
}

int
kap_cli_conf_rules(struct kap_gen *gen, struct kap_cli_tool *t,
                   const config_setting_t *g, int locked, struct kap_err *err)
{
    struct kap_pool *pool = kap_gen_pool(gen);
    const char      *file = NULL, *path;
    struct kap_err   e2;
    char            *text, msg[256];
    size_t           len = 0;

    if (kap_conf_get_str(g, "profile", pool, &file, err) == KAP_ERROR)
        return KAP_ERROR;
    path = file != NULL ? kap_conf_path(gen, file)
                        : kap_psprintf(pool, "%s/%s.prof",
                                       KAP_CLI_PROFILE_DIR, t->name);
    memset(&e2, 0, sizeof(e2));
    if (locked && path != NULL
        && kap_cli_path_safe(pool, path, KAP_CLI_ROOT_ONLY, &e2) != KAP_OK) {
        kap_err_at(err, g, "cli: tool \"%s\": profile: %s", t->name,
                   e2.msg);
        return KAP_ERROR;
    }
    text = path != NULL ? kap_cli_slurp(pool, path, &len, &e2) : NULL;
    if (text == NULL) {
        kap_err_at(err, g, "cli: tool \"%s\": no profile (%s): a tool "
                   "without a profile can only be mode = \"direct\"",
                   t->name, path != NULL ? e2.msg : "out of memory");
        return KAP_ERROR;
    }
    msg[0] = '\0';
    t->profile = len > 0 ? kap_cli_profile_parse(pool, text, len, msg,
                                                 sizeof(msg))
                         : NULL;
    if (t->profile == NULL) {
        kap_err_at(err, g, "cli: tool \"%s\": profile %s: %s", t->name,
                   path, len == 0 ? "empty (was the tool installed when "
                   "kapd was built?)" : msg);
        return KAP_ERROR;
    }
    t->profile_path = path;
    if (kap_cli_conf_rulelist(gen, t, g, "deny", &t->deny, &t->ndeny, err)
        != KAP_OK
        || kap_cli_conf_rulelist(gen, t, g, "ask", &t->ask, &t->nask, err)
           != KAP_OK
        || kap_cli_conf_rulelist(gen, t, g, "allow", &t->allow, &t->nallow,
                                 err) != KAP_OK)
        return KAP_ERROR;
    return KAP_OK;
}
