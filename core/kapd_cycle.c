/*
 * kapd_cycle.c -- the reload cycle: read -> build -> activate, on start,
 * on SIGHUP and when the config content watch sees a change.  What a
 * generation is, its references and its retirement are kapd_gen.c's;
 * kapd -T's dump is kapd_gen_dump.c's.
 *
 * A generation is built whole from the config file(s): the files are read
 * by kapd_conf_read.c (@include expanded, every setting with its true
 * file:line, each file's content hashed for the watch), the `kapd` group is
 * parsed, the modules are loaded (built-ins first, then kapd.load), each
 * module parses and checks its own top-level group, and the policy and
 * audit chains are flattened.  Only a complete generation is activated:
 * listeners handed over, init() of every module, then it becomes current
 * and the previous one retires when its last connection lets go of it
 * (kapd_gen_make_current()).
 * Everything a build reports besides the generation (every error, the
 * exit code class, the files it read) goes into the caller's struct
 * kapd_build: nothing about a build is left in this file's statics.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kapd.h"
#include "kapd_cycle.h"
#include "kapd_conf_read.h"
#include "kapd_clients.h"

/* ---- errors of a build -------------------------------------------------- */

void
kapd_build_free(struct kapd_build *b)
{
    size_t i;

    for (i = 0; i < b->nfiles; i++)
        free(b->files[i].path);
    b->nfiles = 0;
}

/* keep e in the list and as the first error in err */
static void
record_error(struct kapd_build *b, struct kap_err *err,
             const struct kap_err *e)
{
    if (!e->set)
        return;
    if (b->nerrors < KAPD_BUILD_ERRORS_MAX)
        b->errors[b->nerrors++] = *e;
    if (err != NULL && !err->set)
        *err = *e;
}

/* ---- the kapd group ----------------------------------------------------- */

static const char *const kapd_keys[] = {
    "load", "module_path", "policy", "audit", "error_log", "log_level",
    "debug", "pid_file", "shutdown_grace", "reload_check", "user",
    "unix_mode", "clients", "listener_clients", NULL
};
static const char *const policy_keys[] = { "chain", "default", "observe",
                                            NULL };
static const char *const audit_keys[] = { "chain", NULL };

/* a list/array of strings, or one string, into a NULL-terminated array */
static int
get_names(struct kap_gen *gen, const config_setting_t *s, const char ***out,
          const char ***files, int **lines, int one_ok, struct kap_err *err)
{
    int i, n;
    const char **v;

    if (one_ok && config_setting_type(s) == CONFIG_TYPE_STRING) {
        v = kap_palloc(gen->pool, 2 * sizeof(*v));
        if (v == NULL || (v[0] = kap_pstrdup(gen->pool,
                                  config_setting_get_string(s))) == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
        *out = v;
        return KAP_OK;
    }
    if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
        kap_err_at(err, s, "\"%s\" must be a list of strings",
                   config_setting_name(s));
        return KAP_ERROR;
    }
    n = config_setting_length(s);
    v = kap_palloc(gen->pool, (size_t) (n + 1) * sizeof(*v));
    if (v == NULL)
        goto nomem;
    if (files != NULL) {
        *files = kap_palloc(gen->pool, (size_t) (n + 1) * sizeof(**files));
        *lines = kap_palloc(gen->pool, (size_t) (n + 1) * sizeof(**lines));
        if (*files == NULL || *lines == NULL)
            goto nomem;
    }
    for (i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            kap_err_at(err, e, "\"%s\" must be a list of strings",
                       config_setting_name(s));
            return KAP_ERROR;
        }
        if ((v[i] = kap_pstrdup(gen->pool, config_setting_get_string(e)))
            == NULL)
            goto nomem;
        if (files != NULL) {
            (*files)[i] = config_setting_source_file(e);
            (*lines)[i] = (int) config_setting_source_line(e);
        }
    }
    *out = v;
    return KAP_OK;
nomem:
    kap_err_set(err, "out of memory");
    return KAP_ERROR;
}

static int
get_path(struct kap_gen *gen, const config_setting_t *g, const char *key,
         const char **out, struct kap_err *err)
{
    const char *s = NULL;
    int rc = kap_conf_get_str(g, key, gen->pool, &s, err);

    if (rc != KAP_OK)
        return rc;
    if (strcmp(s, "stderr") == 0 || s[0] == '\0') {
        *out = s;
        return KAP_OK;
    }
    if ((*out = kap_conf_path(gen, s)) == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
parse_kapd_group(struct kap_gen *gen, const config_setting_t *g,
                 struct kap_err *err)
{
    struct kapd_core_conf *cc = &gen->core;
    config_setting_t *s;
    const char *str;
    long long ll;
    int rc;

    if (!config_setting_is_group(g)) {
        kap_err_at(err, g, "\"kapd\" must be a group");
        return KAP_ERROR;
    }
    if (kap_conf_check_keys(g, kapd_keys, err) != KAP_OK)
        return KAP_ERROR;

    if ((s = config_setting_get_member(g, "load")) != NULL
        && get_names(gen, s, &cc->load, &cc->load_files, &cc->load_lines, 0,
                     err) != KAP_OK)
        return KAP_ERROR;
    if ((s = config_setting_get_member(g, "module_path")) != NULL) {
        size_t i;
        if (get_names(gen, s, &cc->module_path, NULL, NULL, 1, err)
            != KAP_OK)
            return KAP_ERROR;
        for (i = 0; cc->module_path[i]; i++)
            if ((cc->module_path[i] = kap_conf_path(gen, cc->module_path[i]))
                == NULL) {
                kap_err_set(err, "out of memory");
                return KAP_ERROR;
            }
    }
    if ((s = config_setting_get_member(g, "policy")) != NULL) {
        static const char *const defaults[] = { "deny", "allow", NULL };
        config_setting_t *c;
        int d;
        if (!config_setting_is_group(s)) {
            kap_err_at(err, s, "\"policy\" must be a group");
            return KAP_ERROR;
        }
        if (kap_conf_check_keys(s, policy_keys, err) != KAP_OK)
            return KAP_ERROR;
        if ((c = config_setting_get_member(s, "chain")) != NULL
            && get_names(gen, c, &cc->policy_chain, NULL, NULL, 0, err)
               != KAP_OK)
            return KAP_ERROR;
        rc = kap_conf_get_enum(s, "default", defaults, &d, err);
        if (rc == KAP_ERROR)
            return KAP_ERROR;
        if (rc == KAP_OK)
            cc->policy_default = d == 1 ? KAP_ALLOW : KAP_DENY;
        if (kap_conf_get_bool(s, "observe", &cc->policy_observe, err)
            == KAP_ERROR)
            return KAP_ERROR;
        if (kapd.observe)
            cc->policy_observe = 1;     /* --observe wins */
    }
    if ((s = config_setting_get_member(g, "audit")) != NULL) {
        config_setting_t *c;
        if (!config_setting_is_group(s)) {
            kap_err_at(err, s, "\"audit\" must be a group");
            return KAP_ERROR;
        }
        if (kap_conf_check_keys(s, audit_keys, err) != KAP_OK)
            return KAP_ERROR;
        if ((c = config_setting_get_member(s, "chain")) != NULL
            && get_names(gen, c, &cc->audit_chain, NULL, NULL, 0, err)
               != KAP_OK)
            return KAP_ERROR;
    }
    if (get_path(gen, g, "error_log", &cc->error_log, err) == KAP_ERROR)
        return KAP_ERROR;
    rc = kap_conf_get_str(g, "log_level", gen->pool, &str, err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    if (rc == KAP_OK) {
        int lv = kapd_log_level_parse(str);
        if (lv < 0) {
            kap_err_at(err, config_setting_get_member(g, "log_level"),
                       "unknown log_level \"%s\" (emerg, alert, crit, error, "
                       "warn, notice, info, debug)", str);
            return KAP_ERROR;
        }
        cc->log_level = lv;
    }
    if ((s = config_setting_get_member(g, "debug")) != NULL
        && get_names(gen, s, &cc->debug, NULL, NULL, 1, err) != KAP_OK)
        return KAP_ERROR;
    if (get_path(gen, g, "pid_file", &cc->pid_file, err) == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_secs(g, "shutdown_grace", &cc->shutdown_grace, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_secs(g, "reload_check", &cc->reload_check, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (cc->shutdown_grace < 0 || cc->shutdown_grace > 86400) {
        kap_err_at(err, config_setting_get_member(g, "shutdown_grace"),
                   "shutdown_grace must be between 0 and 86400 seconds");
        return KAP_ERROR;
    }
    if (cc->reload_check < 0 || cc->reload_check > 86400
        || (cc->reload_check > 0 && cc->reload_check < 0.05)) {
        kap_err_at(err, config_setting_get_member(g, "reload_check"),
                   "reload_check must be 0 (off) or between 0.05 and 86400 "
                   "seconds");
        return KAP_ERROR;
    }
    if (kap_conf_get_str(g, "user", gen->pool, &cc->user, err) == KAP_ERROR)
        return KAP_ERROR;
    if ((s = config_setting_get_member(g, "unix_mode")) != NULL) {
        if (config_setting_type(s) == CONFIG_TYPE_STRING) {
            char *endp;
            const char *v = config_setting_get_string(s);
            errno = 0;
            ll = strtol(v, &endp, 8);
            if (errno || *v == '\0' || *endp != '\0') {
                kap_err_at(err, s, "unix_mode must be octal, e.g. \"0660\"");
                return KAP_ERROR;
            }
        } else if (kap_conf_get_int(g, "unix_mode", 0, 07777, &ll, err)
                   != KAP_OK) {
            return KAP_ERROR;
        }
        if (ll < 0 || ll > 07777) {
            kap_err_at(err, s, "unix_mode out of range");
            return KAP_ERROR;
        }
        cc->unix_mode = ll;
    }
    return kapd_clients_parse(gen, g, err);
}

/* ---- building a generation --------------------------------------------- */

static int
gen_add_module(struct kapd_build *b, struct kap_gen *gen, const char *name,
               const char *file, int line, int implicit, struct kap_err *err)
{
    struct kapd_gen_module *gm;
    struct kapd_modref *ref;
    struct kap_err e = { 0 };
    int notfound = 0;

    if (kapd_gen_find_module(gen, name) != NULL) {
        kap_err_set(&e, "module \"%s\" is loaded twice%s", name,
                    kapd_gen_find_module(gen, name)->ref->builtin
                    ? " (it is built in)" : "");
        kapd_conf_err_pos(&e, file, line);
        record_error(b, err, &e);
        return KAP_ERROR;
    }
    if (gen->nmods >= KAPD_MAX_MODULES) {
        kap_err_set(&e, "too many modules (more than %d)", KAPD_MAX_MODULES);
        kapd_conf_err_pos(&e, file, line);
        record_error(b, err, &e);
        return KAP_ERROR;
    }
    ref = kapd_module_find(name, gen->core.module_path, &notfound, &e);
    if (ref == NULL) {
        if (implicit && notfound)
            return KAP_DECLINED;
        kapd_conf_err_pos(&e, file, line);
        record_error(b, err, &e);
        b->exit_code = KAPD_EXIT_MODULE;
        return KAP_ERROR;
    }
    gm = &gen->mods[gen->nmods++];
    gm->ref = ref;
    gm->mod = ref->mod;
    gm->load_file = file;
    gm->load_line = line;
    return KAP_OK;
}

/*
 * The default prefix: the directory of the main file, made absolute
 * against the working directory (the main file's name came from the
 * command line), so that no relative path in the configuration ever
 * depends on where kapd was started.
 */
static char *
default_prefix(struct kap_pool *pool, const char *mainpath)
{
    const char *slash = strrchr(mainpath, '/');
    char cwd[PATH_MAX];

    if (mainpath[0] == '/')
        return kap_psprintf(pool, "%.*s", slash == mainpath ? 1
                            : (int) (slash - mainpath), mainpath);
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    if (slash == NULL)
        return kap_pstrdup(pool, cwd);
    return kap_psprintf(pool, "%s/%.*s", strcmp(cwd, "/") == 0 ? "" : cwd,
                        (int) (slash - mainpath), mainpath);
}

static config_setting_t *
member2(const config_setting_t *g, const char *a, const char *b)
{
    config_setting_t *s = config_setting_get_member(g, a);

    return s != NULL && config_setting_is_group(s)
           ? config_setting_get_member(s, b) : NULL;
}

struct kap_gen *
kapd_gen_build(const char *conf_path, const char *prefix,
               struct kapd_build *b, struct kap_err *err)
{
    struct kap_err localerr = { 0 };
    struct kap_pool *pool;
    struct kap_gen *gen;
    struct kapd_conf_text rd;
    config_t cfg;
    config_setting_t *root, *kg = NULL, *s;
    const struct kap_module *const *bi;
    char *mainpath;
    size_t i;
    int n, ok = 0, have_cfg = 0;

    if (err == NULL)
        err = &localerr;
    kapd_build_free(b);
    memset(b, 0, sizeof(*b));
    b->exit_code = KAPD_EXIT_CONFIG;
    memset(&rd, 0, sizeof(rd));

    if ((gen = kapd_gen_new()) == NULL) {
        kap_err_set(err, "out of memory");
        record_error(b, NULL, err);
        b->exit_code = KAPD_EXIT_NOMEM;
        return NULL;
    }
    pool = gen->pool;
    gen->prefix = prefix ? kap_pstrdup(pool, prefix) : NULL;
    if (conf_path == NULL)
        conf_path = KAPD_SYSCONFDIR "/kap/kap.conf";
    if (conf_path[0] != '/' && prefix != NULL && prefix[0] != '\0')
        mainpath = kap_psprintf(pool, "%s/%s", prefix, conf_path);
    else
        mainpath = kap_pstrdup(pool, conf_path);
    gen->conf_path = mainpath;
    if (mainpath != NULL && (prefix == NULL || prefix[0] == '\0'))
        gen->prefix = default_prefix(pool, mainpath);
    if (mainpath == NULL || gen->prefix == NULL) {
        kap_err_set(err, "out of memory");
        goto fail;
    }

    /* read and parse the files */
    rd.b = b;
    rd.pool = pool;
    rd.err = err;
    if (kapd_conf_read(&rd, mainpath) != KAP_OK) {
        record_error(b, NULL, err);
        goto fail;
    }
    config_init(&cfg);
    have_cfg = 1;
    if (config_read_string(&cfg, rd.text.data ? rd.text.data : "")
        != CONFIG_TRUE) {
        int l = config_error_line(&cfg);
        const char *txt = config_error_text(&cfg);
        kap_err_set(err, "%s", txt ? txt : "syntax error");
        if (l > 0 && (size_t) l <= rd.nmap)
            kapd_conf_err_pos(err, rd.map[l - 1].file, rd.map[l - 1].line);
        else if (l > 0 && rd.nmap > 0)      /* at the end of the input */
            kapd_conf_err_pos(err, rd.map[rd.nmap - 1].file,
                    rd.map[rd.nmap - 1].line);
        else
            kapd_conf_err_pos(err, mainpath, l);
        record_error(b, NULL, err);
        goto fail;
    }
    root = config_root_setting(&cfg);
    kapd_conf_fix_positions(root, &rd);
    if (kapd.global_path != NULL
        && kapd_conf_merge_global(root, kapd.global_path, pool, b, err)
           != KAP_OK) {
        record_error(b, NULL, err);
        goto fail;
    }

    /* the core's own group */
    kg = config_setting_get_member(root, "kapd");
    if (kg != NULL) {
        struct kap_err e = { 0 };
        if (parse_kapd_group(gen, kg, &e) != KAP_OK) {
            record_error(b, err, &e);
            goto fail;
        }
    }

    /* modules: built-ins, then kapd.load (or the implicit default set) */
    for (bi = kapd_builtin_list(); bi != NULL && *bi != NULL; bi++)
        if (gen_add_module(b, gen, (*bi)->name, NULL, 0, 0, err) == KAP_ERROR)
            goto fail;
    if (gen->core.load != NULL) {
        for (i = 0; gen->core.load[i]; i++)
            gen_add_module(b, gen, gen->core.load[i], gen->core.load_files[i],
                           gen->core.load_lines[i], 0, err);
    } else {
        for (i = 0; kapd_default_modules[i]; i++)
            gen_add_module(b, gen, kapd_default_modules[i], NULL, 0, 1, err);
    }
    if (b->nerrors > 0)
        goto fail;

    /* every top-level setting belongs to the core or a loaded module */
    n = config_setting_length(root);
    for (i = 0; i < (size_t) n; i++) {
        struct kap_err e = { 0 };
        const char *name;
        s = config_setting_get_elem(root, (unsigned) i);
        name = config_setting_name(s);
        /* capsule: read by kap run itself (home_ro, env), not by kapd,
         * so that one policy file serves both */
        if (name != NULL && strcmp(name, "capsule") == 0
            && config_setting_is_group(s))
            continue;
        if (name == NULL || strcmp(name, "kapd") == 0
            || kapd_gen_find_module(gen, name) != NULL) {
            if (name != NULL && strcmp(name, "kapd") != 0
                && !config_setting_is_group(s)) {
                kap_err_at(&e, s, "\"%s\" must be a group", name);
                record_error(b, err, &e);
            }
            continue;
        }
        if (!config_setting_is_group(s))
            kap_err_at(&e, s, "unknown directive \"%s\"", name);
        else if (kapd_module_known(name, gen->core.module_path))
            kap_err_at(&e, s, "group \"%s\" but module \"%s\" is not loaded "
                       "(kapd.load)", name, name);
        else
            kap_err_at(&e, s, "unknown group \"%s\"", name);
        record_error(b, err, &e);
    }
    if (b->nerrors > 0)
        goto fail;

    /* the kinds modules define get their bits before anyone parses */
    {
        struct kap_err e = { 0 };
        if (kapd_kind_register_modules(gen, &e) != KAP_OK) {
            record_error(b, err, &e);
            goto fail;
        }
    }

    /* each module parses and checks its own group */
    for (i = 0; i < gen->nmods; i++) {
        struct kapd_gen_module *gm = &gen->mods[i];
        const struct kap_module *m = gm->mod;
        struct kap_err e = { 0 };
        config_setting_t *g = config_setting_get_member(root, m->name);

        if (m->conf_create != NULL
            && (gm->conf = m->conf_create(gen)) == NULL) {
            kap_err_set(&e, "module \"%s\": out of memory creating its "
                        "configuration", m->name);
            record_error(b, err, &e);
            continue;
        }
        if (g != NULL && m->conf_parse == NULL) {
            kap_err_at(&e, g, "module \"%s\" takes no configuration",
                       m->name);
            record_error(b, err, &e);
            continue;
        }
        if (m->conf_parse != NULL
            && m->conf_parse(gen, gm->conf, g, &e) != KAP_OK) {
            if (!e.set)
                kap_err_at(&e, g, "module \"%s\": invalid configuration",
                           m->name);
            record_error(b, err, &e);
            continue;
        }
        if (m->conf_check != NULL
            && m->conf_check(gen, gm->conf, &e) != KAP_OK) {
            if (!e.set)
                kap_err_at(&e, g, "module \"%s\": invalid configuration",
                           m->name);
            record_error(b, err, &e);
            continue;
        }
    }
    if (b->nerrors > 0)
        goto fail;

    /* chains */
    if (kg != NULL && (s = member2(kg, "policy", "chain")) != NULL) {
        struct kap_err e = { 0 };
        if (kapd_chain_check(gen, (const char *const *) gen->core.policy_chain,
                             KAP_HOOK_POLICY, "policy", s, &e) != KAP_OK)
            record_error(b, err, &e);
    }
    if (kg != NULL && (s = member2(kg, "audit", "chain")) != NULL) {
        struct kap_err e = { 0 };
        if (kapd_chain_check(gen, (const char *const *) gen->core.audit_chain,
                             KAP_HOOK_AUDIT, "audit", s, &e) != KAP_OK)
            record_error(b, err, &e);
    }
    if (b->nerrors > 0)
        goto fail;
    {
        struct kap_err e = { 0 };
        if (kapd_chain_build(gen, &e) != KAP_OK) {
            record_error(b, err, &e);
            goto fail;
        }
    }

    /* the files read, for the content watch */
    for (i = b->nfiles; i-- > 0;) {
        struct kapd_conf_file *f = kap_palloc(pool, sizeof(*f));
        if (f == NULL || (f->path = kap_pstrdup(pool, b->files[i].path))
                         == NULL) {
            kap_err_set(err, "out of memory");
            record_error(b, NULL, err);
            goto fail;
        }
        memcpy(f->digest, b->files[i].digest, 32);
        f->next = gen->files;
        gen->files = f;
    }
    kapd_build_free(b);                 /* the generation has them now */
    ok = 1;

fail:
    if (have_cfg)
        config_destroy(&cfg);
    kap_buf_free(&rd.text);
    free(rd.map);
    if (!ok) {
        if (!err->set)
            kap_err_set(err, "configuration failed");
        if (b->nerrors == 0)
            record_error(b, NULL, err);
        kap_gen_unref(gen);
        return NULL;
    }
    return gen;
}

static int
same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static int watch_enabled;

int
kapd_gen_activate(struct kap_gen *gen, struct kapd_build *b,
                  struct kap_err *err)
{
    struct kap_gen *prev = kapd.current;
    const char *log;
    size_t i;

    /* the error log first: a bad path keeps everything as it was */
    log = gen->core.error_log;
    if (log != NULL && (strcmp(log, "stderr") == 0 || log[0] == '\0'))
        log = NULL;
    if (prev == NULL || !same_str(prev->core.error_log, gen->core.error_log)) {
        const char *plog = prev ? prev->core.error_log : NULL;
        if (plog != NULL && (strcmp(plog, "stderr") == 0 || plog[0] == '\0'))
            plog = NULL;
        if ((prev == NULL && log != NULL) || !same_str(plog, log))
            if (kapd_log_open(log, err) != KAP_OK)
                return KAP_ERROR;
    }
    if (kapd_gen_startup(gen, err) != KAP_OK)
        return KAP_ERROR;
    if (kapd_listen_activate(gen, prev, err) != KAP_OK) {
        if (b != NULL)
            b->exit_code = KAPD_EXIT_NETWORK;
        return KAP_ERROR;
    }
    for (i = 0; i < gen->nmods; i++) {
        struct kapd_gen_module *gm = &gen->mods[i];
        if (gm->mod->init != NULL && gm->mod->init(gen, gm->conf) != KAP_OK) {
            size_t j;
            kap_err_set(err, "module \"%s\" failed to initialise generation "
                        "%llu", gm->mod->name, (unsigned long long) gen->id);
            if (gm->load_file != NULL)
                kapd_conf_err_pos(err, gm->load_file, gm->load_line);
            for (j = i; j-- > 0;) {
                struct kapd_gen_module *o = &gen->mods[j];
                if (o->inited && o->mod->fini != NULL)
                    o->mod->fini(gen, o->conf);
                o->inited = 0;
            }
            if (prev != NULL) {
                struct kap_err e2 = { 0 };
                if (kapd_listen_activate(prev, gen, &e2) != KAP_OK)
                    KAP_LOG(KAP_LOG_ALERT, NULL, 0, "cannot give the "
                            "listeners back to generation %llu: %s",
                            (unsigned long long) prev->id, e2.msg);
            }
            if (b != NULL)
                b->exit_code = KAPD_EXIT_MODULE;
            return KAP_ERROR;
        }
        gm->inited = 1;
    }

    kapd_log_set_level(gen->core.log_level);
    kapd_log_set_debug(gen->core.debug);
    kapd_gen_make_current(gen);         /* prev retires when unused */
    if (watch_enabled)
        kapd_watch_start();
    return KAP_OK;
}

/* ---- reload and the content watch -------------------------------------- */

static struct kapd_watch_file failed[KAPD_MAX_CONF_FILES];
static size_t nfailed;

static void
failed_clear(void)
{
    size_t i;

    for (i = 0; i < nfailed; i++)
        free(failed[i].path);
    nfailed = 0;
}

int
kapd_reload(const char *why)
{
    struct kap_err err = { 0 };
    struct kapd_build b = { 0 };
    struct kap_gen *gen;
    uint64_t cur = kapd.current ? kapd.current->id : 0;

    gen = kapd_gen_build(kapd.conf_path, kapd.prefix, &b, &err);
    if (gen != NULL && kapd_gen_activate(gen, &b, &err) != KAP_OK) {
        kap_gen_unref(gen);
        gen = NULL;
    }
    if (gen == NULL) {
        size_t i;
        kapd.reload_failed++;
        if (err.file[0])
            KAP_LOG(KAP_LOG_ERR, NULL, 0, "reload failed, keeping generation "
                    "%llu: %s in %s:%d", (unsigned long long) cur, err.msg,
                    err.file, err.line);
        else
            KAP_LOG(KAP_LOG_ERR, NULL, 0, "reload failed, keeping generation "
                    "%llu: %s", (unsigned long long) cur, err.msg);
        /* remember what failed: the same content is not tried again */
        failed_clear();
        for (i = 0; i < b.nfiles; i++) {
            failed[i] = b.files[i];
            b.files[i].path = NULL;
        }
        nfailed = b.nfiles;
        b.nfiles = 0;
        return KAP_ERROR;
    }
    failed_clear();
    kapd.reload_ok++;
    KAP_LOG(KAP_LOG_NOTICE, NULL, 0, "reloaded (%s), generation %llu",
            why ? why : "signal", (unsigned long long) gen->id);
    return KAP_OK;
}

static ev_timer watch_timer;

/* non-zero when any watched file's content differs from what was read */
static int
watch_changed(void)
{
    unsigned char d[32];
    size_t i;

    if (nfailed > 0) {
        for (i = 0; i < nfailed; i++) {
            kapd_conf_digest(failed[i].path, d);
            if (memcmp(d, failed[i].digest, 32) != 0)
                return 1;
        }
        return 0;
    }
    if (kapd.current != NULL) {
        struct kapd_conf_file *f;
        for (f = kapd.current->files; f != NULL; f = f->next) {
            kapd_conf_digest(f->path, d);
            if (memcmp(d, f->digest, 32) != 0)
                return 1;
        }
    }
    return 0;
}

static void
watch_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) w;
    (void) revents;
    if (kapd.shutting_down || kapd.current == NULL)
        return;
    if (watch_changed())
        kapd_reload("configuration changed");
}

void
kapd_watch_start(void)
{
    double every = kapd.current ? kapd.current->core.reload_check
                                : KAPD_DEFAULT_RELOAD_CHECK;

    watch_enabled = 1;
    if (ev_is_active(&watch_timer)) {
        ev_ref(kap_loop());     /* undo the ev_unref of the previous start */
        ev_timer_stop(kap_loop(), &watch_timer);
    }
    if (every <= 0)
        return;
    ev_timer_init(&watch_timer, watch_cb, every, every);
    ev_timer_start(kap_loop(), &watch_timer);
    ev_unref(kap_loop());   /* the watch alone does not keep the loop alive */
}

void
kapd_watch_stop(void)
{
    if (!watch_enabled)
        return;
    watch_enabled = 0;
    if (ev_is_active(&watch_timer)) {
        ev_ref(kap_loop());
        ev_timer_stop(kap_loop(), &watch_timer);
    }
    failed_clear();
}

/* ---- exit ----------------------------------------------------------------- */

void
kapd_cycle_exit(void)
{
    kapd_watch_stop();
    kapd_gen_exit();
    failed_clear();
}
