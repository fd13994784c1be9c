/*
 * kapd_kinds.c -- the request kinds: the built-in ones (connect, http,
 * dns, mcp_list, mcp_call, cli, test, addr, first: bits 0 to 8) and the
 * ones a module defines by name (struct kap_module.kinds), registered
 * when a generation is built and given the next free bit.
 *
 * A kind keeps its bit for the life of the process, so a reload (or a
 * request of an older generation still in flight) never sees a bit change
 * meaning.  32 kinds at most in all; a module that defines a built-in
 * name, or a name another loaded module defines, is a configuration error
 * naming both.
 */
#include "config.h"

#include <string.h>

#include "kapd.h"

static const char *kinds[KAPD_NKINDS] = {
    "connect", "http", "dns", "mcp_list", "mcp_call", "cli", "test", "addr",
    "first"
};
#define KAPD_NBUILTIN_KINDS 9

/* the module that defined each registered kind (the name is copied) */
static char defined_name[KAPD_NKINDS][KAPD_KIND_NAME_MAX + 1];
static char defined_by[KAPD_NKINDS][64];

int
kapd_kind_index(uint32_t kind)
{
    int i;

    if (kind == 0 || (kind & (kind - 1)) != 0)
        return -1;
    for (i = 0; i < KAPD_NKINDS; i++)
        if (kind == (1u << i))
            return kinds[i] != NULL ? i : -1;
    return -1;
}

const char *
kap_req_kind_name(uint32_t kind)
{
    int i = kapd_kind_index(kind);

    return i < 0 ? "unknown" : kinds[i];
}

uint32_t
kap_req_kind(const char *name)
{
    int i;

    if (name == NULL)
        return 0;
    for (i = 0; i < KAPD_NKINDS; i++)
        if (kinds[i] != NULL && strcmp(kinds[i], name) == 0)
            return 1u << i;
    return 0;
}

static int
valid_name(const char *n)
{
    size_t i, len = strlen(n);

    if (len == 0 || len > KAPD_KIND_NAME_MAX || !(n[0] >= 'a' && n[0] <= 'z'))
        return 0;
    for (i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9')
              || n[i] == '_'))
            return 0;
    return 1;
}

int
kapd_kind_register(const char *name, const char *module, struct kap_err *err)
{
    int i;

    if (!valid_name(name)) {
        kap_err_set(err, "module \"%s\" defines the request kind \"%s\": a "
                    "kind name is 1 to %d of a-z, 0-9 and _, starting with "
                    "a letter", module, name, KAPD_KIND_NAME_MAX);
        return KAP_ERROR;
    }
    for (i = 0; i < KAPD_NKINDS; i++) {
        if (kinds[i] == NULL || strcmp(kinds[i], name) != 0)
            continue;
        if (i < KAPD_NBUILTIN_KINDS) {
            kap_err_set(err, "module \"%s\" defines the request kind \"%s\", "
                        "which is built in", module, name);
            return KAP_ERROR;
        }
        /* again, from a reload (maybe by another module now: two
           modules of one generation are caught by the caller) */
        snprintf(defined_by[i], sizeof(defined_by[i]), "%s", module);
        return KAP_OK;
    }
    for (i = KAPD_NBUILTIN_KINDS; i < KAPD_NKINDS; i++)
        if (kinds[i] == NULL) {
            snprintf(defined_name[i], sizeof(defined_name[i]), "%s", name);
            snprintf(defined_by[i], sizeof(defined_by[i]), "%s", module);
            kinds[i] = defined_name[i];
            return KAP_OK;
        }
    kap_err_set(err, "module \"%s\" defines the request kind \"%s\": no room "
                "(%d kinds at most, %d of them built in)", module, name,
                KAPD_NKINDS, KAPD_NBUILTIN_KINDS);
    return KAP_ERROR;
}

int
kapd_kind_register_modules(struct kap_gen *gen, struct kap_err *err)
{
    size_t i, j, k;

    for (i = 0; i < gen->nmods; i++) {
        const struct kap_module *m = gen->mods[i].mod;
        const char *const *names = KAPD_MODULE_HAS(m, kinds) ? m->kinds
                                                              : NULL;
        for (k = 0; names != NULL && names[k] != NULL; k++) {
            /* two modules of one generation defining it: name both */
            for (j = 0; j < i; j++) {
                const struct kap_module *o = gen->mods[j].mod;
                const char *const *on = KAPD_MODULE_HAS(o, kinds) ? o->kinds
                                                                   : NULL;
                size_t x;
                for (x = 0; on != NULL && on[x] != NULL; x++)
                    if (strcmp(on[x], names[k]) == 0) {
                        kap_err_set(err, "modules \"%s\" and \"%s\" both "
                                    "define the request kind \"%s\"",
                                    o->name, m->name, names[k]);
                        return KAP_ERROR;
                    }
            }
            if (kapd_kind_register(names[k], m->name, err) != KAP_OK)
                return KAP_ERROR;
        }
    }
    return KAP_OK;
}

uint32_t
kapd_hook_kinds(const struct kap_hook *h)
{
    uint32_t bits = h->kinds;
    size_t i;

    for (i = 0; h->kind_names != NULL && h->kind_names[i] != NULL; i++)
        bits |= kap_req_kind(h->kind_names[i]);
    return bits;
}
