/*
 * kapd_module.c -- finding, loading and ABI-checking modules.
 *
 * A module is found by name: first in the built-in registry, then as
 * kap_<name>.so in each directory of kapd.module_path.  The shared object
 * is opened with dlopen(RTLD_NOW | RTLD_LOCAL) and its one exported
 * descriptor, kap_<name>_module, is checked before any of its code runs:
 * magic, ABI major, ABI minor, struct size, build signature, name.  Each
 * failure has its own message naming both values.  A loaded module is a
 * refcounted kapd_modref shared by every generation using it; the handle
 * is dlclose()d when the last of them retires.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kapd.h"
#include "kapd_cycle.h"

#ifndef KAPD_MODULEDIR
#define KAPD_MODULEDIR "/usr/local/lib/kapd/modules"
#endif

static struct kapd_modref *modrefs;     /* every loaded module */

/*
 * struct kap_module as it was at ABI 2.0, frozen: the smallest size a
 * module of this major may declare.  A minor release appends fields to
 * struct kap_module (before spare); this copy never changes, so a 2.0
 * module stays loadable by a 2.N core.
 */
struct kapd_module_2_0 {
    uint32_t magic;
    uint16_t abi_major, abi_minor;
    uint32_t size;
    const char *build_sig, *name, *version;
    uint32_t flags;
    void *(*conf_create)(void);
    int (*conf_parse)(void);
    int (*conf_check)(void);
    int (*startup)(void);
    int (*init)(void);
    void (*fini)(void);
    void (*shutdown)(void);
    const void *listener, *hooks;
    void (*status)(void);
    const char *const *kinds;
    uintptr_t spare[8];
};
#define KAPD_MODULE_V1_SIZE sizeof(struct kapd_module_2_0)
#if KAP_ABI_MAJOR == 2 && KAP_ABI_MINOR == 0
_Static_assert(sizeof(struct kap_module) == sizeof(struct kapd_module_2_0),
               "struct kap_module changed: bump the ABI minor (appended "
               "fields) or major, and keep struct kapd_module_2_0 frozen");
#endif

static const char *const first_party[] = {
    "http_connect", "dns", "channel", "mcp", "cli", "remote", NULL
};

static int
check_abi(const struct kap_module *m, const char *name, const char *path,
          struct kap_err *err)
{
    char where[1200];

    if (path != NULL)
        snprintf(where, sizeof(where), "module \"%s\" (%s)", name, path);
    else
        snprintf(where, sizeof(where), "module \"%s\"", name);

    if (m == NULL) {
        kap_err_set(err, "%s has no descriptor", where);
        return KAP_ERROR;
    }
    if (m->magic != KAP_MODULE_MAGIC) {
        kap_err_set(err, "%s has magic 0x%08x, kapd expects 0x%08x "
                    "(not a kapd module)", where, (unsigned) m->magic,
                    (unsigned) KAP_MODULE_MAGIC);
        return KAP_ERROR;
    }
    if (m->abi_major != KAP_ABI_MAJOR) {
        kap_err_set(err, "%s was built for ABI %u.%u, kapd has ABI %u.%u",
                    where, (unsigned) m->abi_major, (unsigned) m->abi_minor,
                    (unsigned) KAP_ABI_MAJOR, (unsigned) KAP_ABI_MINOR);
        return KAP_ERROR;
    }
    if (m->abi_minor > KAP_ABI_MINOR) {
        kap_err_set(err, "%s was built for ABI %u.%u, kapd has ABI %u.%u "
                    "(module minor %u is newer than kapd minor %u)",
                    where, (unsigned) m->abi_major, (unsigned) m->abi_minor,
                    (unsigned) KAP_ABI_MAJOR, (unsigned) KAP_ABI_MINOR,
                    (unsigned) m->abi_minor, (unsigned) KAP_ABI_MINOR);
        return KAP_ERROR;
    }
    if (m->size < KAPD_MODULE_V1_SIZE) {
        kap_err_set(err, "%s has descriptor size %u, kapd needs at least %u "
                    "(ABI %u.0)", where, (unsigned) m->size,
                    (unsigned) KAPD_MODULE_V1_SIZE, (unsigned) KAP_ABI_MAJOR);
        return KAP_ERROR;
    }
    if (m->build_sig == NULL || strcmp(m->build_sig, KAP_BUILD_SIG) != 0) {
        kap_err_set(err, "%s was built with signature \"%s\", kapd has "
                    "\"%s\"", where, m->build_sig ? m->build_sig : "(null)",
                    KAP_BUILD_SIG);
        return KAP_ERROR;
    }
    if (m->name == NULL || strcmp(m->name, name) != 0) {
        kap_err_set(err, "%s is named \"%s\", the config asks for \"%s\"",
                    where, m->name ? m->name : "(null)", name);
        return KAP_ERROR;
    }
    return KAP_OK;
}

int
kapd_module_check_abi(const struct kap_module *m, const char *name,
                      struct kap_err *err)
{
    return check_abi(m, name, NULL, err);
}

/* module names become file and symbol names: [a-z0-9_] only */
static int
valid_name(const char *name)
{
    size_t i;

    if (name == NULL || name[0] == '\0' || strlen(name) > 64)
        return 0;
    for (i = 0; name[i]; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
              || ch == '_'))
            return 0;
    }
    return 1;
}

static const struct kap_module *
builtin_find(const char *name)
{
    const struct kap_module *const *b;

    for (b = kapd_builtin_list(); b != NULL && *b != NULL; b++)
        if ((*b)->name != NULL && strcmp((*b)->name, name) == 0)
            return *b;
    return NULL;
}

static struct kapd_modref *
modref_new(const struct kap_module *m, void *handle, const char *path,
           int builtin)
{
    struct kapd_modref *ref = calloc(1, sizeof(*ref));

    if (ref == NULL)
        return NULL;
    if (path != NULL && (ref->path = strdup(path)) == NULL) {
        free(ref);
        return NULL;
    }
    ref->mod = m;
    ref->handle = handle;
    ref->builtin = builtin;
    ref->refs = 1;
    ref->next = modrefs;
    modrefs = ref;
    return ref;
}

/*
 * The module path used when the config names none: $KAPD_MODULE_PATH
 * (one directory; for running from a build tree) or the compiled-in
 * KAPD_MODULEDIR.
 */
static const char *const *
module_default_dirs(void)
{
    static const char *dirs[2];
    const char *env = getenv("KAPD_MODULE_PATH");

    dirs[0] = env && *env ? env : KAPD_MODULEDIR;
    dirs[1] = NULL;
    return dirs;
}

struct kapd_modref *
kapd_module_find(const char *name, const char **dirs, int *notfound,
                 struct kap_err *err)
{
    const char *const *default_dirs = module_default_dirs();
    const struct kap_module *m;
    struct kapd_modref *ref;
    char path[4096], sym[128];
    const char *const *d;
    struct stat st;
    void *handle;

    if (notfound != NULL)
        *notfound = 0;
    if (!valid_name(name)) {
        kap_err_set(err, "invalid module name \"%s\" (use a-z, 0-9, _)",
                    name ? name : "(null)");
        return NULL;
    }
    for (ref = modrefs; ref != NULL; ref = ref->next) {
        if (strcmp(ref->mod->name, name) == 0) {
            ref->refs++;
            return ref;
        }
    }
    if ((m = builtin_find(name)) != NULL) {
        if (check_abi(m, name, "built in", err) != KAP_OK)
            return NULL;
        ref = modref_new(m, NULL, NULL, 1);
        if (ref == NULL)
            kap_err_set(err, "out of memory loading module \"%s\"", name);
        return ref;
    }

    for (d = dirs ? (const char *const *) dirs : default_dirs; *d; d++) {
        int n = snprintf(path, sizeof(path), "%s/kap_%s.so", *d, name);
        if (n < 0 || (size_t) n >= sizeof(path))
            continue;
        if (stat(path, &st) == 0)
            break;
    }
    if (*d == NULL) {
        if (notfound != NULL)
            *notfound = 1;
        d = dirs ? (const char *const *) dirs : default_dirs;
        kap_err_set(err, "module \"%s\" not found: no kap_%s.so in %s%s",
                    name, name, d[0] ? d[0] : "(empty module_path)",
                    d[0] && d[1] ? " or the other module_path directories"
                                 : "");
        return NULL;
    }

    dlerror();
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *e = dlerror();
        kap_err_set(err, "module \"%s\" (%s) cannot be loaded: %s", name,
                    path, e ? e : "unknown dlopen error");
        return NULL;
    }
    snprintf(sym, sizeof(sym), "kap_%s_module", name);
    m = (const struct kap_module *) dlsym(handle, sym);
    if (m == NULL) {
        kap_err_set(err, "module \"%s\" (%s) has no symbol %s", name, path,
                    sym);
        dlclose(handle);
        return NULL;
    }
    if (check_abi(m, name, path, err) != KAP_OK) {
        dlclose(handle);
        return NULL;
    }
    ref = modref_new(m, handle, path, 0);
    if (ref == NULL) {
        kap_err_set(err, "out of memory loading module \"%s\"", name);
        dlclose(handle);
        return NULL;
    }
    return ref;
}

struct kapd_modref *
kapd_module_get(const char *name, const char **path, struct kap_err *err)
{
    return kapd_module_find(name, path, NULL, err);
}

void
kapd_module_unref(struct kapd_modref *ref)
{
    struct kapd_modref **pp;

    if (ref == NULL || --ref->refs > 0)
        return;
    for (pp = &modrefs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ref) {
            *pp = ref->next;
            break;
        }
    }
    if (ref->handle != NULL)
        dlclose(ref->handle);
    free(ref->path);
    free(ref);
}

int
kapd_module_known(const char *name, const char **dirs)
{
    const char *const *default_dirs = module_default_dirs();
    const char *const *d;
    struct stat st;
    char path[4096];
    size_t i;

    if (!valid_name(name))
        return 0;
    if (builtin_find(name) != NULL)
        return 1;
    for (i = 0; first_party[i]; i++)
        if (strcmp(first_party[i], name) == 0)
            return 1;
    for (d = dirs ? (const char *const *) dirs : default_dirs; *d; d++) {
        int n = snprintf(path, sizeof(path), "%s/kap_%s.so", *d, name);
        if (n > 0 && (size_t) n < sizeof(path) && stat(path, &st) == 0)
            return 1;
    }
    return 0;
}
